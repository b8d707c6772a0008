"""Retrieval-augmented generation: OpenAI's files and vector stores on Qdrant (docs/rag.md)."""
