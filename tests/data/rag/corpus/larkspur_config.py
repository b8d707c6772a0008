"""Shared configuration constants for Larkspur Labs services.

Every service imports its defaults from here and may override them with environment variables
of the same name (see `from_env`). Values are chosen for production; dev and staging override a
few of them in their deploy.yaml. Changing a default here changes it for every service that has
not overridden it, so treat edits to this module like a production deploy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

# --- quillfeather (document rendering) -------------------------------------------------------

# How long a single render job may run before it is abandoned with error LRK-4471. Large
# documents with embedded charts were timing out at 8 seconds, so this was raised in 2023.
QF_RENDER_TIMEOUT_MS = 12_500

# Render workers per node. Each worker holds its own font cache, roughly 180 MB.
QF_WORKERS_PER_NODE = 6

# Pages beyond this limit are refused up front with LRK-3308 instead of timing out.
QF_MAX_PAGES = 400

# --- bramblegate (edge gateway) --------------------------------------------------------------

# Request bodies larger than this are rejected at the edge with HTTP 413 (4 MiB).
BRAMBLEGATE_MAX_BODY_BYTES = 4_194_304

# Consecutive upstream failures that open the circuit breaker for a route.
BRAMBLEGATE_BREAKER_THRESHOLD = 7

# How long an open breaker stays open before a single probe request is let through.
BRAMBLEGATE_BREAKER_COOLDOWN_S = 45

# Idle keep-alive connections to an upstream are closed after this many seconds.
BRAMBLEGATE_IDLE_TIMEOUT_S = 90

# --- marrowbone (job queue) ------------------------------------------------------------------

# A job that is not acknowledged within this many seconds becomes visible to other workers.
MARROWBONE_VISIBILITY_TIMEOUT_S = 340

# Attempts before a job is moved to the dead-letter queue.
MARROWBONE_MAX_ATTEMPTS = 5

# Base of the exponential backoff between attempts, in seconds: 2, 4, 8, 16 ...
MARROWBONE_BACKOFF_BASE_S = 2

# --- thistledown (billing ledger) ------------------------------------------------------------

# Days an overdue account keeps full access before it is moved to read-only mode.
THISTLEDOWN_GRACE_DAYS = 9

# Invoices are generated in batches of this size during the nightly run.
THISTLEDOWN_INVOICE_BATCH = 250

# Currency amounts are stored as integers in the smallest unit; this is the rounding mode.
THISTLEDOWN_ROUNDING = "ROUND_HALF_EVEN"

# --- hollowreed (authentication) -------------------------------------------------------------

# Lifetime of an access token issued by hollowreed.
HOLLOWREED_ACCESS_TOKEN_TTL_S = 900

# Refresh tokens are valid for 30 days and rotate on every use.
HOLLOWREED_REFRESH_TOKEN_TTL_S = 30 * 24 * 3600

# Failed sign-in attempts before an account is locked for HOLLOWREED_LOCKOUT_S.
HOLLOWREED_MAX_FAILED_LOGINS = 8
HOLLOWREED_LOCKOUT_S = 1_200

# --- sableflume (search indexing) ------------------------------------------------------------

# Documents are re-indexed when their content hash changes, in batches of this many.
SABLEFLUME_REINDEX_BATCH = 1_000

# Search results are cached per tenant for this long.
SABLEFLUME_CACHE_TTL_S = 120


@dataclass(frozen=True)
class ServiceLimits:
    """The subset of limits that the admin console displays and lets support staff inspect."""

    render_timeout_ms: int = QF_RENDER_TIMEOUT_MS
    max_body_bytes: int = BRAMBLEGATE_MAX_BODY_BYTES
    visibility_timeout_s: int = MARROWBONE_VISIBILITY_TIMEOUT_S
    grace_days: int = THISTLEDOWN_GRACE_DAYS

    @classmethod
    def from_env(cls) -> ServiceLimits:
        """Defaults overridden by environment variables named after the module constants."""
        names = {
            "render_timeout_ms": "QF_RENDER_TIMEOUT_MS",
            "max_body_bytes": "BRAMBLEGATE_MAX_BODY_BYTES",
            "visibility_timeout_s": "MARROWBONE_VISIBILITY_TIMEOUT_S",
            "grace_days": "THISTLEDOWN_GRACE_DAYS",
        }
        values = {}
        for f in fields(cls):
            raw = os.environ.get(names[f.name])
            if raw is not None:
                values[f.name] = int(raw)
        return cls(**values)


def describe() -> str:
    """A one-line summary for start-up logs."""
    limits = ServiceLimits.from_env()
    return (
        f"render_timeout={limits.render_timeout_ms}ms body_limit={limits.max_body_bytes}B "
        f"visibility={limits.visibility_timeout_s}s grace={limits.grace_days}d"
    )
