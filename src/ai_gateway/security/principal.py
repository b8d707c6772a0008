"""Who is calling: the result of authentication, read by every later stage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ai_gateway.security.keys import ApiKey

PrincipalKind = Literal["master", "key", "jwt"]


@dataclass(frozen=True, slots=True)
class Principal:
    """`master`: the operator (admin routes, no per-user limits). `key`: a virtual key, its
    user, team and limits. `jwt`: a user signed in through the Auth service."""

    kind: PrincipalKind
    user: str | None = None
    team: str | None = None
    key: ApiKey | None = None

    @property
    def admin(self) -> bool:
        return self.kind == "master"

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        if self.kind == "key" and self.key is not None:
            return f"key:{self.key.id}"
        if self.kind == "jwt":
            return f"jwt:{self.user}"
        return "master"

    @property
    def model_filter(self) -> Callable[[str], bool] | None:
        """Whether this caller may use a model name; None when it may use every name (only a
        virtual key that lists its models restricts them)."""
        key = self.key
        return key.allows_model if key is not None and key.models else None

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key is not None else None


MASTER = Principal(kind="master")
