"""Versioned prompt templates (docs/prompts.md): stored, cached, rendered in a sandbox."""
