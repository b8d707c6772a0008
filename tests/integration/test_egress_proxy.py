"""Egress through a forward proxy: with HTTP_PROXY / HTTPS_PROXY set, the calls to the providers
go through it (a real proxy on 127.0.0.1 that counts what it forwards), with the proxy's
credentials as `Proxy-Authorization`; NO_PROXY sends a host direct; a proxy that is down is
named in the error."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, LoopThread, free_port

pytestmark = pytest.mark.integration

BODY = {"model": "fast", "messages": [{"role": "user", "content": "through the proxy"}]}


class CountingProxy:
    """A forward proxy: CONNECT tunnels and absolute-form HTTP requests, piped to the origin.
    `seen` lists the first request line and headers of every connection it took."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = LoopThread("proxy")
        self._server = self._thread.run(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            self.seen.append((f"{method} {target}", headers))
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                url = urlsplit(target)
                up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
                up_writer.write(head)  # absolute-form: the origin server takes it as it is
            self._writers.add(up_writer)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            for writer in self._writers:
                writer.close()
            for writer in self._writers:
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

        self._thread.run(close())
        self._thread.stop()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


@pytest.fixture
def proxy() -> Iterator[CountingProxy]:
    server = CountingProxy()
    yield server
    server.stop()


def post(url: str, stream: bool = False) -> httpx.Response:
    # trust_env=False: the test's own calls to the gateway go direct, whatever the variables.
    with httpx.Client(trust_env=False, timeout=30) as client:
        return client.post(f"{url}/v1/chat/completions", json={**BODY, "stream": stream})


def test_provider_calls_go_through_the_proxy(
    emu: EmulatorServer,
    start_gateway: GatewayFactory,
    proxy: CountingProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://egress:s3cret@127.0.0.1:{proxy.port}")
    gw = start_gateway(emulator_yaml(emu))
    resp = post(gw.url)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"]
    assert post(gw.url, stream=True).status_code == 200
    assert proxy.seen, "the provider call did not go through the proxy"
    line, headers = proxy.seen[0]
    assert line == f"POST {emu.url}/v1/chat/completions"
    expected = base64.b64encode(b"egress:s3cret").decode()
    assert headers["proxy-authorization"] == f"Basic {expected}"
    assert emu.requests()  # and the provider answered them


def test_no_proxy_goes_direct(
    emu: EmulatorServer,
    start_gateway: GatewayFactory,
    proxy: CountingProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("no_proxy", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    gw = start_gateway(emulator_yaml(emu))
    assert post(gw.url).status_code == 200
    assert post(gw.url, stream=True).status_code == 200
    assert proxy.seen == []


def test_a_proxy_that_is_down_is_named(
    emu: EmulatorServer, start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://user:pw-not-shown@127.0.0.1:{free_port()}")
    gw = start_gateway(emulator_yaml(emu))
    resp = post(gw.url)
    assert resp.status_code == 502
    message = resp.json()["error"]["message"]
    assert "egress proxy" in message
    assert "pw-not-shown" not in resp.text
    assert not emu.requests()
