"""The Anthropic Messages API, as the gateway speaks it to its clients (`api/messages.py`): the
request's schema (`schema`), the request as the OpenAI-shaped view the stages work on
(`request`), the answer and the stream rendered back in Anthropic's shapes (`response`,
`stream`), and errors in Anthropic's shape (`errors`). Pure: no I/O, no state across requests.
"""
