"""The `notifications:` section of the config file: the channels events are sent to, the rules
that say which events go where and how often, and when the watched conditions fire.
docs/notifications.md describes the behaviour and every event's payload.

Part of the config file's schema, so in the settings layer: it imports nothing of the code that
acts on it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

EVENT_KINDS: tuple[str, ...] = (
    "budget.threshold",
    "ratelimit.exceeded",
    "errors.spike",
    "circuit.opened",
    "circuit.closed",
    "latency.slo",
    "key.expiring",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


class RetryConfig(_Frozen):
    """A failed delivery (a connection error, a timeout, a 5xx or 429) is tried again up to
    `retries` times, after `backoff_s`, then twice that, ... at most `max_backoff_s`."""

    retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=1.0, gt=0, le=600)
    max_backoff_s: float = Field(default=30.0, gt=0, le=3600)


class WebhookChannel(_Frozen):
    """A POST of the event's JSON, signed with HMAC-SHA256 over `<timestamp>.<body>` with
    `secret` (the `x-gateway-signature` header) when a secret is set."""

    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    retry: RetryConfig = RetryConfig()

    _url = field_validator("url")(_check_url)


class SlackChannel(_Frozen):
    """A Slack-compatible incoming webhook: a POST of `{"text": "<one line>"}`."""

    type: Literal["slack"]
    url: str
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    retry: RetryConfig = RetryConfig()

    _url = field_validator("url")(_check_url)


class EmailChannel(_Frozen):
    """A mail over SMTP (the standard library's client, in a thread). `tls`: "starttls" on a
    plain connection, "ssl" from the start, or "none" (a relay on localhost)."""

    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    sender: str = Field(alias="from")
    to: tuple[str, ...] = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    retry: RetryConfig = RetryConfig()


ChannelConfig = Annotated[WebhookChannel | SlackChannel | EmailChannel, Field(discriminator="type")]


class RuleConfig(_Frozen):
    """Events of the kinds in `events` ("*": every kind) go to `channels`, at most once per
    `min_interval_s` for one kind and subject (e.g. one deployment's circuit), fleet-wide."""

    name: str | None = None
    events: tuple[str, ...] = Field(min_length=1)
    channels: tuple[str, ...] = Field(min_length=1)
    min_interval_s: float = Field(default=300.0, ge=0, le=30 * 86400)

    @field_validator("events")
    @classmethod
    def _known(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        for kind in events:
            if kind != "*" and kind not in EVENT_KINDS:
                raise ValueError(f"unknown event {kind!r}; known: {', '.join(EVENT_KINDS)}, *")
        return events


class RateLimitWatch(_Frozen):
    """`ratelimit.exceeded` when one subject (a key, user, team or model) is refused `count`
    times within `window_s`: sustained refusals, not every 429."""

    count: int = Field(default=20, ge=1, le=100_000)
    window_s: float = Field(default=60.0, gt=0, le=86400)


class ErrorWatch(_Frozen):
    """`errors.spike` when at least `min_requests` upstream attempts on one deployment within
    `window_s` failed at a rate of at least `rate`."""

    window_s: float = Field(default=60.0, gt=0, le=86400)
    min_requests: int = Field(default=20, ge=1)
    rate: float = Field(default=0.5, gt=0, le=1)


class LatencyWatch(_Frozen):
    """`latency.slo` when the p95 latency of one deployment's attempts within `window_s` is over
    `p95_ms` (more than 5% of at least `min_requests` attempts took longer). A stream's attempt
    ends at its first token."""

    window_s: float = Field(default=300.0, gt=0, le=86400)
    min_requests: int = Field(default=20, ge=1)
    p95_ms: float | None = Field(default=None, gt=0)


class KeyExpiryWatch(_Frozen):
    """`key.expiring` for each key that expires within `within_days`, checked every
    `check_interval_s` (once per key and expiry date)."""

    within_days: float = Field(default=7.0, gt=0, le=365)
    check_interval_s: float = Field(default=3600.0, gt=0, le=86400)


class NotificationsConfig(_Frozen):
    """Off unless a rule names a channel. `queue_size`: events waiting for the sender (more are
    dropped and counted); `history`: deliveries kept in memory for GET /admin/notifications."""

    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    rules: tuple[RuleConfig, ...] = ()
    budget_thresholds: tuple[int, ...] = (50, 80, 100)
    ratelimit: RateLimitWatch = RateLimitWatch()
    errors: ErrorWatch = ErrorWatch()
    latency: LatencyWatch = LatencyWatch()
    key_expiry: KeyExpiryWatch = KeyExpiryWatch()
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    history: int = Field(default=200, ge=1, le=100_000)
    concurrency: int = Field(default=4, ge=1, le=100)

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    @field_validator("budget_thresholds")
    @classmethod
    def _percentages(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 < value <= 1000 for value in values):
            raise ValueError("thresholds are percentages of the budget, 1 to 1000")
        return tuple(sorted(set(values)))

    @model_validator(mode="after")
    def _rules_name_channels(self) -> NotificationsConfig:
        for rule in self.rules:
            for channel in rule.channels:
                if channel not in self.channels:
                    raise ValueError(
                        f"rule {rule.name or rule.events!r} names channel {channel!r}, which "
                        "is not listed under notifications.channels"
                    )
        return self
