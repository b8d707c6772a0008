"""Typed request and response models of the OpenAI-compatible API (one group per module)."""
