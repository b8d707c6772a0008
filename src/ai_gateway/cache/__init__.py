"""Response caching: exact and semantic, shared through Redis, scoped per tenant."""
