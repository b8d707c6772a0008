"""The analytics API's query parameters: time ranges, buckets, groupings and limits.

Times are ISO-8601 timestamps (`2025-01-31T12:00:00Z`; a timestamp without an offset is UTC;
a bare date is its midnight UTC) or relative to now (`90s`, `30m`, `24h`, `7d`, `2w`, `now`).
Every bad value is a 400 that names the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from ai_gateway.errors import InvalidRequestError

S = TypeVar("S", bound=str)

DEFAULT_RANGE = timedelta(hours=24)
MAX_POINTS = 1000  # time buckets a timeseries may span
# Auto-chosen buckets: the smallest of these that keeps a range within AUTO_POINTS points.
NICE_BUCKETS_S = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
AUTO_POINTS = 120
MAX_LIMIT = 1000

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d{1,9})\s*([smhdw])")
_MAX_DURATION_S = 100 * 366 * 86400


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def parse_duration(value: str, param: str) -> int:
    """Seconds in `30m`, `24h`, `7d`... (or plain seconds, `300`)."""
    text = value.strip().lower()
    match = _DURATION.fullmatch(text)
    if text.isdigit() and len(text) <= 9:
        seconds = int(text)
    elif match is not None:
        seconds = int(match[1]) * _UNITS[match[2]]
    else:
        raise InvalidRequestError(
            f"Invalid value for '{param}': {_shown(value)} is not a duration; use a number "
            "followed by s, m, h, d or w (e.g. 15m, 24h, 7d).",
            param=param,
        )
    if seconds > _MAX_DURATION_S:
        raise InvalidRequestError(
            f"Invalid value for '{param}': {_shown(value)} is longer than 100 years.", param=param
        )
    return seconds


def parse_time(value: str, now: datetime, param: str) -> datetime:
    """An ISO-8601 timestamp, or a duration before `now` (`24h` = 24 hours ago)."""
    text = value.strip()
    if text.lower() == "now":
        return now
    if _DURATION.fullmatch(text.lower()):
        return now - timedelta(seconds=parse_duration(text, param))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(
            f"Invalid value for '{param}': {_shown(value)} is neither an ISO-8601 timestamp "
            "(e.g. 2025-01-31T12:00:00Z) nor a time relative to now (e.g. 24h, 7d).",
            param=param,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def to_json(self) -> dict[str, str]:
        return {"start": iso(self.start), "end": iso(self.end)}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def parse_range(params: Mapping[str, str], now: datetime) -> TimeRange:
    """`start` and `end`; by default the 24 hours before now (or before `end`)."""
    end = parse_time(params["end"], now, "end") if "end" in params else now
    start = parse_time(params["start"], now, "start") if "start" in params else end - DEFAULT_RANGE
    if start >= end:
        raise InvalidRequestError(
            f"Invalid value for 'start': the range must start before it ends "
            f"(start {iso(start)}, end {iso(end)}).",
            param="start",
        )
    return TimeRange(start, end)


def parse_choice(params: Mapping[str, str], name: str, choices: tuple[S, ...], default: S) -> S:
    value = params.get(name)
    if value is None:
        return default
    for choice in choices:
        if value == choice:
            return choice
    raise InvalidRequestError(
        f"Invalid value for '{name}': {_shown(value)}; use one of {', '.join(choices)}.",
        param=name,
    )


def parse_limit(params: Mapping[str, str], default: int = 50) -> int:
    value = params.get("limit")
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequestError(
            f"Invalid value for 'limit': {_shown(value)}; use a whole number from 1 to "
            f"{MAX_LIMIT}.",
            param="limit",
        )
    return int(value)


def parse_bucket(params: Mapping[str, str], window: TimeRange) -> int:
    """The bucket width in seconds: given (`5m`, `1h`, `300`) or chosen to suit the range."""
    value = params.get("bucket")
    if value is None or value.strip().lower() == "auto":
        for bucket in NICE_BUCKETS_S:
            if window.seconds / bucket <= AUTO_POINTS:
                return bucket
        return max(NICE_BUCKETS_S[-1], int(window.seconds // AUTO_POINTS) + 1)
    bucket = parse_duration(value, "bucket")
    if bucket < 1:
        raise InvalidRequestError(
            "Invalid value for 'bucket': a bucket is at least 1 second.", param="bucket"
        )
    points = window.seconds / bucket
    if points > MAX_POINTS:
        least = int(window.seconds // MAX_POINTS) + 1
        raise InvalidRequestError(
            f"Invalid value for 'bucket': {_shown(value)} splits this range into {int(points)} "
            f"points (at most {MAX_POINTS}); use a bucket of at least {least} seconds.",
            param="bucket",
        )
    return bucket


def check_known(params: Collection[str], known: Collection[str]) -> None:
    """A misspelt parameter (`group-by`) would otherwise be silently ignored."""
    for name in params:
        if name not in known:
            raise InvalidRequestError(
                f"Unknown query parameter '{name[:40]}'; this endpoint accepts "
                f"{', '.join(sorted(known))}.",
                param=name[:40],
            )
