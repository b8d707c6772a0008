"""Ids of the Responses API's objects, in OpenAI's shapes (`resp_`, `msg_`, `fc_`, ...): a prefix
and 48 random hex digits. Random, not sequential: an id is also the key a caller holds to a
stored response, and ids must not be guessable."""

from __future__ import annotations

import secrets

RESPONSE = "resp"
MESSAGE = "msg"
FUNCTION_CALL = "fc"
FUNCTION_OUTPUT = "fco"
REASONING = "rs"
FILE_SEARCH = "fs"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"
