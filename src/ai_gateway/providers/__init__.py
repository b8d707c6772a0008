"""Provider adapters: the gateway's OpenAI shapes to and from each provider's wire format."""
