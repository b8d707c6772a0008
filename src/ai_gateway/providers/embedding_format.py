"""Shaping embedding vectors into the OpenAI embeddings response."""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Sequence
from typing import Any


def encode_vector(vector: Sequence[float], encoding_format: str | None) -> list[float] | str:
    """`float` (default): the list as is; `base64`: little-endian float32 bytes, as OpenAI sends."""
    if encoding_format != "base64":
        return list(vector)
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def embeddings_response(
    model: str,
    vectors: Sequence[Sequence[float]],
    encoding_format: str | None,
    prompt_tokens: int,
) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_vector(v, encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
