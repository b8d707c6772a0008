"""Egress through a forward proxy: the conventional `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`
variables (lower-case names too; the lower-case one wins, as with curl and Python's urllib) for
the calls to the providers.

`EgressProxies.from_environ()` reads them once, when the app is built. For each upstream URL,
`route()` says which proxy to use (`HTTPS_PROXY` for https://, `HTTP_PROXY` for http://; none
when the host matches `NO_PROXY`: a comma-separated list of host names (also matching their
subdomains), domain suffixes such as `.example.com`, IP addresses or CIDR ranges, each
optionally with `:port`, or `*` for every host), and the `Proxy-Authorization` header when the
proxy's URL carries a user and password (on the CONNECT of an https:// request; on the
request itself for http://, which goes to the proxy as it is). The answer is cached per
scheme, host and port, so a request costs one dict lookup. Proxy credentials never appear in
logs or errors.

aiohttp's own `trust_env` is not used: it re-reads the environment in a thread for every
request and also applies `~/.netrc` credentials to the providers' hosts.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.request
from collections.abc import Mapping, Sequence
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

import aiohttp


class Route(NamedTuple):
    proxy: str | None  # the proxy's URL, without credentials; None: direct
    connect_headers: dict[str, str] | None  # for the CONNECT of an https:// request
    request_headers: dict[str, str] | None  # added to an http:// request sent to the proxy


DIRECT = Route(None, None, None)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_WITH_PORT = re.compile(r"^(\[[^\]]*\]|[^:]*):(\d+)$")


def _no_proxy_entries(value: str) -> list[tuple[str, int | None]]:
    """NO_PROXY as (host, domain or network; port or None) pairs."""
    entries: list[tuple[str, int | None]] = []
    for raw in value.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        port: int | None = None
        match = _WITH_PORT.match(entry)
        if match:
            entry, port = match[1], int(match[2])
        entry = entry.strip("[]").removeprefix("*.").lstrip(".")
        entries.append((entry, port))
    return entries


def _bypassed(host: str, port: int, entries: Sequence[tuple[str, int | None]]) -> bool:
    host = host.lower().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry, entry_port in entries:
        if entry_port is not None and entry_port != port:
            continue
        if entry == "*" or host == entry or host.endswith("." + entry):
            return True
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def _split_proxy(url: str) -> tuple[str, dict[str, str] | None]:
    """A proxy URL as aiohttp takes it (no credentials) and its `Proxy-Authorization`."""
    if "://" not in url:
        url = "http://" + url  # "host:3128", as curl accepts it
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    bare = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    if parts.username is None:
        return bare, None
    auth = aiohttp.encode_basic_auth(unquote(parts.username), unquote(parts.password or ""))
    return bare, {"Proxy-Authorization": auth}


class EgressProxies:
    def __init__(self, proxies: Mapping[str, str]) -> None:
        """`proxies`: as `urllib.request.getproxies_environment()` gives them (scheme -> URL,
        and "no" -> the NO_PROXY list)."""
        self._proxies = {
            scheme: _split_proxy(url)
            for scheme, url in proxies.items()
            if scheme in ("http", "https") and url
        }
        self._no_proxy_text = proxies.get("no") or ""
        self._no_proxy = _no_proxy_entries(self._no_proxy_text)
        self._routes: dict[tuple[str, str, int | None], Route] = {}

    @classmethod
    def from_environ(cls) -> EgressProxies:
        return cls(urllib.request.getproxies_environment())

    @property
    def active(self) -> bool:
        return bool(self._proxies)

    def describe(self) -> dict[str, str]:
        """Which proxy each scheme uses, without credentials (for the start-up log)."""
        shown = {scheme: proxy for scheme, (proxy, _) in self._proxies.items()}
        if self._no_proxy_text:
            shown["no_proxy"] = self._no_proxy_text
        return shown

    def route(self, url: str) -> Route:
        """How a request to `url` goes out: through which proxy (None: direct), with which
        headers."""
        if not self._proxies:
            return DIRECT
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = self._resolve(*key)
        return route

    def _resolve(self, scheme: str, host: str, port: int | None) -> Route:
        proxy = self._proxies.get(scheme)
        if proxy is None:
            return DIRECT
        port = port or _DEFAULT_PORTS.get(scheme, 0)
        if self._no_proxy and _bypassed(host, port, self._no_proxy):
            return DIRECT
        url, auth = proxy
        if scheme == "https":
            return Route(url, auth, None)
        return Route(url, None, auth)


__all__ = ["DIRECT", "EgressProxies", "Route"]
