"""Serverless functions (hooks): operator code run at named points of the stage chain
(docs/hooks.md). `config.py` is the `hooks:` section, `api.py` the contract a Python hook is
written against, `functions.py` the two kinds of function (Python, HTTP), `runner.py` one call of
a hook with its time bound and failure policy, `records.py` the `on_record` sink off the hot
path. The stage is `pipeline/hooks.py`, the wiring `app_hooks.py`."""
