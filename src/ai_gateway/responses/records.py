"""What the response store keeps: one row per stored response. Plain data.

A stored response is the Response object the client got (`response`, its `output` included)
and the input items of its own request (`input_items`, each with an id, as
`GET /v1/responses/{id}/input_items` lists them). Who may see it is its `Owner`, as for RAG's
files (rag/records.py). Times are Unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ai_gateway.rag.records import Owner

JSONItem = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str  # resp_<hex>
    created_at: int
    owner: Owner
    previous_response_id: str | None
    status: str  # completed, incomplete, failed
    response: JSONItem  # the Response object as the client got it
    input_items: list[JSONItem]  # this request's own input items, with ids

    @property
    def output(self) -> list[JSONItem]:
        output = self.response.get("output")
        return list(output) if isinstance(output, list) else []


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier response of a conversation: what it was given and what it answered."""

    id: str
    input_items: list[JSONItem]
    output: list[JSONItem]
