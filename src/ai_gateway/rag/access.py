"""Whose files and vector stores: the owner a caller's new ones get (by `rag.scope`) and what a
caller may see (records.py says how the two meet)."""

from __future__ import annotations

from ai_gateway.rag.config import RagScope
from ai_gateway.rag.records import ANYONE, EVERYONE, MASTER_OWNER, Owner, Viewer
from ai_gateway.security.principal import Principal


def owner_of(principal: Principal | None, scope: RagScope) -> Owner:
    """Without authentication, anyone's; with the master key, the master key's; else the
    caller's team (scope `team`), user (`team` without a team, or `user`) or key (`key`, or a
    key without a user)."""
    if principal is None:
        return ANYONE
    if principal.admin:
        return MASTER_OWNER
    if scope == "team" and principal.team:
        return Owner("team", principal.team)
    if scope in ("team", "user") and principal.user:
        return Owner("user", principal.user)
    if principal.key_id is not None:
        return Owner("key", principal.key_id)
    return Owner("user", principal.user or "")


def viewer_of(principal: Principal | None) -> Viewer:
    if principal is None or principal.admin:
        return EVERYONE
    return Viewer(key=principal.key_id, user=principal.user, team=principal.team)
