"""Webhook notifications: a JSON summary POSTed with aiohttp.

A notification never fails a run. Each POST has a total timeout; a timeout,
a connection error, a 5xx or a 429 is retried with exponential back-off
(``retries`` times); any other answer is final. Whatever happens is logged
and returned as a :class:`Delivery`, never raised.

The webhook comes from the study's ``[notify]`` table, else from the global
config's ``[notify]`` table (same keys)::

    [notify]
    webhook = "https://hooks.example.com/genesis"
    on = ["finish", "failure", "critical"]   # the default: all three
    timeout_s = 10
    retries = 3
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from engine.headless.output import json_safe

log = logging.getLogger("engine.headless.notify")

EVENTS = ("finish", "failure", "critical")
MAX_RESPONSE_BYTES = 64 * 1024
BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """Where and when to POST (resolved from the study file and the global config)."""

    webhook: str | None
    on: tuple[str, ...] = EVENTS
    timeout_s: float = 10.0
    retries: int = 3

    def wants(self, event: str) -> bool:
        return self.webhook is not None and event in self.on

    @classmethod
    def resolve(cls, study_notify: Any = None) -> NotifySettings:
        """The study's ``[notify]`` if it names a webhook, else the global config's."""
        chosen = study_notify
        if getattr(chosen, "webhook", None) is None:
            from engine.config import config_section
            from engine.optimize.spec import NotifySpec

            chosen = config_section("notify", NotifySpec)
        if chosen is None or getattr(chosen, "webhook", None) is None:
            return cls(None)
        return cls(
            webhook=str(chosen.webhook),
            on=tuple(chosen.on),
            timeout_s=float(chosen.timeout_s),
            retries=int(chosen.retries),
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one notification."""

    event: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event, "ok": self.ok, "attempts": self.attempts, "status": self.status,
            "error": self.error, "elapsed_s": round(self.elapsed_s, 3),
        }


def _retryable(status: int) -> bool:
    return status >= 500 or status == 429


async def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    event: str,
    timeout_s: float = 10.0,
    retries: int = 3,
    backoff_s: float = BACKOFF_S,
) -> Delivery:
    """POST ``payload`` to ``url``; retried on timeouts, connection errors, 5xx and 429. Never raises."""
    import aiohttp

    from engine import __version__

    body = json_safe(payload)
    headers = {"User-Agent": f"genesis/{__version__}", "X-Genesis-Event": event}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    started = time.monotonic()
    attempts = 0
    status: int | None = None
    error: str | None = None
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        for attempt in range(retries + 1):
            if attempt:
                await asyncio.sleep(min(MAX_BACKOFF_S, backoff_s * 2 ** (attempt - 1)))
            attempts += 1
            try:
                async with session.post(url, json=body, allow_redirects=False) as response:
                    status = response.status
                    await response.content.read(MAX_RESPONSE_BYTES)  # drain a bounded amount, ignore it
            except TimeoutError:
                status, error = None, f"timed out after {timeout_s:g}s"
                log.info("webhook %s: attempt %d: %s", event, attempts, error)
                continue
            except aiohttp.ClientError as failure:
                status, error = None, f"{type(failure).__name__}: {failure}"
                log.info("webhook %s: attempt %d: %s", event, attempts, error)
                continue
            if 200 <= status < 300:
                log.info("webhook %s: delivered (HTTP %d, attempt %d)", event, status, attempts)
                return Delivery(event, True, attempts, status, None, time.monotonic() - started)
            error = f"HTTP {status}"
            log.info("webhook %s: attempt %d: %s", event, attempts, error)
            if not _retryable(status):
                break
    log.error("webhook %s: not delivered after %d attempt%s (%s)", event, attempts, "s" * (attempts > 1), error)
    return Delivery(event, False, attempts, status, error, time.monotonic() - started)


class Notifier:
    """Sends a run's notifications per its :class:`NotifySettings`; keeps what became of them."""

    def __init__(self, settings: NotifySettings, *, backoff_s: float = BACKOFF_S) -> None:
        self.settings = settings
        self.backoff_s = backoff_s
        self.deliveries: list[Delivery] = []
        self._tasks: set[asyncio.Task[Delivery | None]] = set()

    @property
    def enabled(self) -> bool:
        return self.settings.webhook is not None

    async def send(self, event: str, payload: dict[str, Any]) -> Delivery | None:
        """POST ``payload`` if the settings want ``event``; ``None`` if they don't. Never raises."""
        if not self.settings.wants(event):
            return None
        assert self.settings.webhook is not None
        try:
            delivery = await post_json(
                self.settings.webhook,
                {"event": event, **payload},
                event=event,
                timeout_s=self.settings.timeout_s,
                retries=self.settings.retries,
                backoff_s=self.backoff_s,
            )
        except asyncio.CancelledError:
            raise
        except Exception as failure:  # a notification must never fail the run
            log.error("webhook %s: %s: %s", event, type(failure).__name__, failure)
            delivery = Delivery(event, False, 0, None, f"{type(failure).__name__}: {failure}")
        self.deliveries.append(delivery)
        return delivery

    def send_soon(self, event: str, payload: dict[str, Any]) -> None:
        """Send in the background (a critical alert during the run); :meth:`drain` waits for it."""
        if not self.settings.wants(event):
            return
        task = asyncio.get_running_loop().create_task(self.send(event, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background notifications still in flight."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
