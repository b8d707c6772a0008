"""The channels an event is sent through: a signed webhook, a Slack-compatible incoming webhook
and email over SMTP. Each sends one event once (`send`) and raises `DeliveryError` when it was
not delivered, saying whether trying again could help; retries are the sender's
(notify/sender.py).

The webhook signature: `x-gateway-signature: t=<unix seconds>,v1=<hex>`, where hex is
HMAC-SHA256 with the channel's secret over `<t>.<body>` (the exact bytes received).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import smtplib
import ssl
import time
from email.message import EmailMessage
from typing import Protocol

import aiohttp
import orjson

from ai_gateway.notify.config import EmailChannel, RetryConfig, SlackChannel, WebhookChannel
from ai_gateway.notify.events import Event

SIGNATURE_HEADER = "x-gateway-signature"
USER_AGENT = "ai-gateway-notify/1"


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class Channel(Protocol):
    name: str
    kind: str
    retry: RetryConfig

    async def send(self, event: Event) -> int | None:
        """Deliver `event` once; the receiver's HTTP status (None for email)."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `x-gateway-signature` value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance_s: float = 300) -> bool:
    """What a receiver checks: the signature matches and its timestamp is recent."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).partition(",v1=")[2]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class HTTPPoster:
    """One aiohttp session for every HTTP channel, created inside the running loop."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"user-agent": USER_AGENT})
        try:
            async with self._session.post(
                url,
                data=body,
                headers={"content-type": "application/json", **headers},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise DeliveryError(
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                retryable=True,
            ) from None
        if 200 <= status < 300:
            return status
        raise DeliveryError(
            f"the receiver answered {status}",
            retryable=status == 429 or status >= 500 or status == 408,
            status=status,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class WebhookSender:
    kind = "webhook"

    def __init__(self, name: str, config: WebhookChannel, http: HTTPPoster) -> None:
        self.name = name
        self.retry = config.retry
        self._config = config
        self._http = http

    async def send(self, event: Event) -> int | None:
        body = event.body()
        headers = {"x-gateway-event": event.kind, "x-gateway-delivery": event.id}
        secret = self._config.secret
        if secret is not None:
            headers[SIGNATURE_HEADER] = signature(secret.get_secret_value(), int(time.time()), body)
        return await self._http.post(self._config.url, body, headers, self._config.timeout_s)


class SlackSender:
    kind = "slack"

    def __init__(self, name: str, config: SlackChannel, http: HTTPPoster) -> None:
        self.name = name
        self.retry = config.retry
        self._config = config
        self._http = http

    async def send(self, event: Event) -> int | None:
        body = orjson.dumps({"text": f"[{event.kind}] {event.text}"})
        return await self._http.post(self._config.url, body, {}, self._config.timeout_s)


def email_message(config: EmailChannel, event: Event) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    message["Subject"] = f"[ai-gateway] {event.kind}: {event.subject}"
    message.set_content(
        event.text + "\n\n" + orjson.dumps(event.payload(), option=orjson.OPT_INDENT_2).decode()
    )
    return message


class EmailSender:
    """smtplib in a worker thread: the event loop never waits on the mail server."""

    kind = "email"

    def __init__(self, name: str, config: EmailChannel) -> None:
        self.name = name
        self.retry = config.retry
        self._config = config

    async def send(self, event: Event) -> int | None:
        message = email_message(self._config, event)
        try:
            await asyncio.to_thread(self._send, message)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"the mail server answered {exc.smtp_code}",
                retryable=exc.smtp_code < 500,
                status=exc.smtp_code,
            ) from None
        except (smtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from None
        return None

    def _send(self, message: EmailMessage) -> None:
        config = self._config
        smtp: smtplib.SMTP
        if config.tls == "ssl":
            smtp = smtplib.SMTP_SSL(
                config.host,
                config.port,
                timeout=config.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
        with smtp:
            if config.tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if config.username is not None and config.password is not None:
                smtp.login(config.username, config.password.get_secret_value())
            smtp.send_message(message)
