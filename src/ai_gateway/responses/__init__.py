"""The OpenAI Responses API over any provider (docs/api.md, "Responses API"): a Responses request
becomes a chat exchange (`request.py`, `items.py`), and the chain's answer or chunks become a
Response object or its events (`output.py`, `events.py`); stored responses (`records.py`) carry
a conversation on through `previous_response_id`."""
