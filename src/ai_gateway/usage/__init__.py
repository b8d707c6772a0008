"""Token counting, pricing and usage records."""
