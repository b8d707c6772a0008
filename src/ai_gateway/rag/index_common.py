"""What both index backends share, so that they hold the same points and rank them the same way:
the vector names, the BM25 model that turns text into sparse vectors, the payload of a chunk,
the score a hit reports, and attribute filters translated into a neutral tree of conditions that
each backend renders with its own classes (index_edge.py, index_qdrant.py).

Filters (OpenAI's attribute filters, filters.py) act on the payload keys `attributes.<key>`:

- `eq`: a string or a boolean matches that value; a number matches a range from it to itself
  (so 3 matches 3.0);
- `gt gte lt lte`: numbers only (a string or boolean value is an InvalidFilterError);
- `in`: strings match any of them; numbers and booleans match if equal to one;
- `ne` and `nin`: NOT `eq` and NOT `in`. A chunk without the attribute is equal to no value, so
  `ne` and `nin` match it (as `!=` would in most languages), while every other comparison does
  not;
- `and`/`or`: all / any of their filters, nested to any depth.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qdrant_edge import Bm25

from ai_gateway.rag.filters import AttributeFilter, ComparisonFilter, Scalar
from ai_gateway.rag.index import ChunkPoint, IndexHit, VectorIndexError
from ai_gateway.rag.records import AttributeValue

DENSE = "dense"  # the named dense vector (cosine)
SPARSE = "bm25"  # the named sparse vector (BM25 term weights; the IDF modifier on)
RRF_K = 2  # Qdrant server's default for reciprocal rank fusion, given to Edge explicitly
STORE_KEY = "store_id"


def keyword_model() -> Bm25:
    """BM25 with Qdrant's defaults (English tokens, stemmed, stopwords dropped). Both backends
    use it for chunks (`embed_document`) and queries (`embed_query`): the same tokens and weights
    on either, and on a server no inference service is needed."""
    return Bm25()


def by_fusion(fused: list[tuple[float, IndexHit]], limit: int) -> list[IndexHit]:
    """Hits ranked by their fusion score, ties (frequent: reciprocal ranks are few distinct
    values) broken by cosine score, then by file and chunk, so a search ranks the same way
    every time."""
    fused.sort(key=lambda pair: (-pair[0], -pair[1].score, pair[1].file_id, pair[1].chunk))
    return [hit for _, hit in fused[:limit]]


def candidates(limit: int) -> int:
    """How many chunks each ranking (dense, BM25) proposes to the fusion: enough that a chunk
    ranked fairly well by both is not cut before it is fused."""
    return max(4 * limit, 20)


def payload(point: ChunkPoint) -> dict[str, Any]:
    return {
        STORE_KEY: point.store_id,
        "file_id": point.file_id,
        "filename": point.filename,
        "chunk": point.chunk,
        "text": point.text,
        "attributes": dict(point.attributes),
    }


def hit(payload: Mapping[str, Any] | None, score: float) -> IndexHit:
    if payload is None:
        raise VectorIndexError("the index returned a point without its payload")
    attributes: dict[str, AttributeValue] = dict(payload.get("attributes") or {})
    return IndexHit(
        store_id=str(payload[STORE_KEY]),
        file_id=str(payload["file_id"]),
        filename=str(payload["filename"]),
        chunk=int(payload["chunk"]),
        text=str(payload["text"]),
        score=score,
        attributes=attributes,
    )


def clip(score: float) -> float:
    return min(1.0, max(0.0, score))


def unit(vector: Sequence[float]) -> list[float]:
    """`vector` scaled to length 1 (the zero vector as it is)."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


def cosine(query_unit: Sequence[float], stored: Sequence[float]) -> float:
    """The cosine similarity, clipped to [0, 1], of a unit query and a stored vector (Qdrant
    stores cosine vectors normalized)."""
    return clip(sum(map(operator.mul, query_unit, stored)))


def passes(score: float, threshold: float | None) -> bool:
    return threshold is None or score >= threshold


# --- Attribute filters as a neutral tree -------------------------------------------------------


class InvalidFilterError(VectorIndexError, ValueError):
    """The filter cannot be applied (a range on a string, a list where one value is expected).
    The caller's fault: a 400."""


@dataclass(frozen=True, slots=True)
class Equals:
    key: str  # the attribute's name, not its payload path
    value: str | bool


@dataclass(frozen=True, slots=True)
class AnyOf:
    key: str
    values: tuple[str, ...]  # none: matches nothing


@dataclass(frozen=True, slots=True)
class Between:
    key: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@dataclass(frozen=True, slots=True)
class Clause:
    """All of `must`, at least one of `should` (when any), none of `must_not`."""

    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()


Condition = Equals | AnyOf | Between | Clause


def attribute_path(key: str, root: str = "attributes") -> str:
    """The payload path of attribute `key` (in object `root`), quoted so that dots and spaces
    stay in the name."""
    if '"' in key:
        raise InvalidFilterError(f"attribute key {key!r}: a filter key cannot contain '\"'")
    return f'{root}."{key}"'


def condition(spec: AttributeFilter) -> Condition:
    """`spec` as a neutral tree (the module's docstring says what each comparison means)."""
    if not isinstance(spec, ComparisonFilter):
        parts = tuple(condition(part) for part in spec.filters)
        return Clause(must=parts) if spec.type == "and" else Clause(should=parts)
    kind = spec.type
    if kind in ("in", "nin"):
        values = spec.value if isinstance(spec.value, list) else [spec.value]
        node = _one_of(spec.key, values)
        return node if kind == "in" else Clause(must_not=(node,))
    value = spec.value
    if isinstance(value, list):
        raise InvalidFilterError(f"filter {kind!r} on {spec.key!r} takes one value, not a list")
    if kind in ("eq", "ne"):
        node = _equals(spec.key, value)
        return node if kind == "eq" else Clause(must_not=(node,))
    if isinstance(value, bool | str):
        raise InvalidFilterError(f"filter {kind!r} on {spec.key!r} compares numbers only")
    return Between(spec.key, **{kind: float(value)})


def _equals(key: str, value: Scalar) -> Condition:
    if isinstance(value, str | bool):
        return Equals(key, value)
    return Between(key, gte=float(value), lte=float(value))


def _one_of(key: str, values: Sequence[Scalar]) -> Condition:
    strings = tuple(value for value in values if isinstance(value, str))
    others = [_equals(key, value) for value in values if not isinstance(value, str)]
    if not others:
        return AnyOf(key, strings)
    parts = (AnyOf(key, strings), *others) if strings else tuple(others)
    return parts[0] if len(parts) == 1 else Clause(should=parts)
