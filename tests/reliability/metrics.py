"""Reading a gateway's /metrics: requests served, by status class."""

from __future__ import annotations

import re
import urllib.request
from collections import Counter

_LINE = re.compile(r"^ai_gateway_requests_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")
_STATUS = re.compile(r'status="(\d+)"')


def requests_by_status(base_url: str) -> Counter[str]:
    """`ai_gateway_requests_total` summed per status code."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as resp:  # noqa: S310
        text = resp.read().decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            status = _STATUS.search(match["labels"])
            counts[status[1] if status else "?"] += int(float(match["value"]))
    return counts


def server_errors(counts: Counter[str]) -> int:
    return sum(n for status, n in counts.items() if status.startswith("5"))
