"""Access control and abuse protection: rate limits and budget spend counters."""
