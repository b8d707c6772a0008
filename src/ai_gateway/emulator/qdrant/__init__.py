"""An emulator of a Qdrant server's REST API (`ai-gateway emulate --qdrant`), for tests and
one-machine clusters (scripts/cluster), not production: the endpoints qdrant-client's async
client calls for RAG and the semantic cache, answered by qdrant-client's local mode. See
:mod:`.app` for the entry points and :mod:`.handlers` for the endpoints."""

from ai_gateway.emulator.qdrant.app import (
    DEFAULT_PORT,
    QdrantEmulatorSettings,
    create_app,
    run,
    start,
)

__all__ = ["DEFAULT_PORT", "QdrantEmulatorSettings", "create_app", "run", "start"]
