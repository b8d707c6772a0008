"""The `responses:` section of the config file: the Responses API's stored responses
(`/v1/responses`, docs/api.md). Part of the config file's schema, so in the settings layer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Who a stored response belongs to, as RAG's files (rag/config.py): the key that created it, its
# user (a key without a user: that key), or its team. The master key sees all.
ResponseScope = Literal["key", "user", "team"]


class ResponsesConfig(BaseModel):
    """`store`: keep responses (`store: true`, the API's default) in the gateway's database, so
    that they can be retrieved and continued with `previous_response_id`; off, nothing is kept
    and a `previous_response_id` is a 400. `scope`: who sees a stored response besides the
    master key. `ttl_days`: a stored response older than this is gone (404) and deleted.
    `max_chain`: the most earlier responses a `previous_response_id` reaches back through."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: bool = True
    scope: ResponseScope = "user"
    ttl_days: int = Field(default=30, ge=1, le=3650)
    max_chain: int = Field(default=200, ge=1, le=10_000)
