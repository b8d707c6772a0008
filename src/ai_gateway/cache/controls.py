"""A request's `Cache-Control` header, as the response cache reads it.

- `no-cache`: do not answer from the cache (the new answer is still stored: status `refresh`);
- `no-store`: do not store the answer;
- `max-age=N`: answer only from an entry at most N seconds old (`max-age=0` is `no-cache`).

Other directives are ignored; a malformed `max-age` is ignored too (the header is advice).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CacheControl:
    no_cache: bool = False
    no_store: bool = False
    max_age_s: float | None = None

    @classmethod
    def parse(cls, header: str | None) -> CacheControl:
        if not header:
            return NO_CONTROL
        no_cache = no_store = False
        max_age: float | None = None
        for directive in header.lower().split(","):
            name, _, value = directive.strip().partition("=")
            if name == "no-cache":
                no_cache = True
            elif name == "no-store":
                no_store = True
            elif name == "max-age" and value.strip().strip('"').isdigit():
                max_age = float(value.strip().strip('"'))
        if max_age == 0:
            no_cache, max_age = True, None
        return cls(no_cache, no_store, max_age)


NO_CONTROL = CacheControl()
