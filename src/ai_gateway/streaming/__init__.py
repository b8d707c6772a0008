"""Server-sent events: decoding provider streams, encoding the client's."""
