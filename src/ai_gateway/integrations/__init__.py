"""Context sources: the DevMentor Memory, Project and Learning services (docs/integrations.md).

`sources.ContextSources` asks them in parallel under one time budget, each behind its own
circuit breaker, and fails open: a source that does not answer in time or well is left out and
the result says why. `config.IntegrationsConfig` is the config file's `integrations:` section.
"""
