"""A pooled HTTP client for market-data services.

One :class:`HttpService` owns one lazily created ``aiohttp.ClientSession``
with a bounded connection pool, connect and read timeouts, a total deadline
per request (``request_timeout_s``: a server trickling one byte at a time is
cut off, not waited on forever), an optional :class:`Deadline` for a whole
operation of many requests, a cap on response size, a client-side weighted
rate limiter, and retries with exponential backoff and jitter on connection
errors, timeouts, truncated bodies, 5xx and 429 (honouring ``Retry-After``).
Other 4xx answers are not retried. Redirects are followed only within the
request's origin (same scheme, host and port, at most ``MAX_REDIRECTS``); a
redirect to another origin is refused with :class:`RedirectRefusedError`.
Close the service (``await service.close()`` or ``async with``) when done.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

import aiohttp
import msgspec
from yarl import URL

from engine.errors import NetworkError


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Limits of one HTTP service."""

    max_connections: int = 8
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    request_timeout_s: float = 30.0
    max_response_bytes: int = 32 * 1024 * 1024
    retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 10.0
    max_retry_after_s: float = 60.0
    weight_per_minute: float = 1200.0
    user_agent: str = "genesis-console"


class HttpStatusError(NetworkError):
    """The server answered with an HTTP error status that is not retried (a 4xx)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DeadlineError(NetworkError):
    """A request or a whole operation did not finish within its deadline (exit code 1)."""


class RedirectRefusedError(NetworkError):
    """The server redirected to another origin (scheme, host or port), or too many times."""


MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Deadline:
    """The moment (event-loop time) a whole operation of many requests must end by.

    ``what`` names it in errors: ``fetch deadline of 300s``.
    """

    at: float
    what: str

    @classmethod
    def after(cls, seconds: float, what: str) -> Deadline:
        """The deadline ``seconds`` from now (call inside a running event loop)."""
        return cls(asyncio.get_running_loop().time() + seconds, what)

    def remaining(self) -> float:
        return self.at - asyncio.get_running_loop().time()


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


class WeightedRateLimiter:
    """A token bucket refilled at ``weight_per_minute``; a request takes its weight.

    The bucket holds at most one minute of weight, so a burst up to the limit
    goes through at once and the long-run rate never exceeds the limit.
    """

    def __init__(self, weight_per_minute: float) -> None:
        if weight_per_minute <= 0:
            raise ValueError("weight_per_minute must be positive")
        self.capacity = float(weight_per_minute)
        self.rate = weight_per_minute / 60.0
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()
        self.waited_s = 0.0

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, weight: float) -> None:
        """Wait until ``weight`` tokens are available, then take them (FIFO)."""
        weight = min(float(weight), self.capacity)
        async with self._lock:
            self._refill()
            while self._tokens < weight:
                delay = (weight - self._tokens) / self.rate
                self.waited_s += delay
                await asyncio.sleep(delay)
                self._refill()
            self._tokens -= weight

    def charge(self, weight: float) -> None:
        """Take extra weight after the fact (the bucket may go negative: later calls wait)."""
        self._refill()
        self._tokens -= weight


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    reference = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, moment.timestamp() - reference)


@dataclass(slots=True)
class HttpStats:
    """Counts of one service's traffic."""

    requests: int = 0
    retries: int = 0
    bytes_received: int = 0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one attempt got: a 2xx body, or a retryable status with its hint."""

    status: int
    body: bytes | None
    retry_after: float | None = None
    detail: str = ""


class HttpService:
    """A pooled ``aiohttp`` client: one session per service, created on first use."""

    def __init__(self, config: HttpConfig | None = None, *, rng: random.Random | None = None) -> None:
        self.config = config or HttpConfig()
        self.limiter = WeightedRateLimiter(self.config.weight_per_minute)
        self.stats = HttpStats()
        self._session: aiohttp.ClientSession | None = None
        self._rng = rng or random.Random()
        self._closed = False

    @property
    def connector(self) -> aiohttp.BaseConnector | None:
        """The session's connector (``None`` before the first request)."""
        return None if self._session is None else self._session.connector

    @property
    def closed(self) -> bool:
        return self._closed

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise NetworkError("http: the service is closed")
        if self._session is None or self._session.closed:
            config = self.config
            connector = aiohttp.TCPConnector(
                limit=config.max_connections,
                limit_per_host=config.max_connections,
                ttl_dns_cache=300,
                enable_cleanup_closed=False,
            )
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=config.connect_timeout_s,
                sock_connect=config.connect_timeout_s,
                sock_read=config.read_timeout_s,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                headers={"User-Agent": config.user_agent},
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        """Close the session and every pooled connection; the service can't be used after."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def __aenter__(self) -> HttpService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def backoff(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (0-based): exponential, capped, with jitter."""
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * (2**attempt))
        return ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)

    async def post_json(
        self, url: str, payload: Any, *, weight: float = 1.0, what: str = "", deadline: Deadline | None = None
    ) -> bytes:
        """POST ``payload`` as JSON; return the raw response body of a 2xx answer.

        ``what`` names the request in errors (``hyperliquid BTC 1h``). Raises
        :class:`NetworkError` once retries are exhausted, at once for a body
        over the size cap, :class:`DeadlineError` when ``deadline`` passes,
        :class:`RedirectRefusedError` for a redirect to another origin, and
        :class:`HttpStatusError` for a non-retried 4xx.
        """
        body = msgspec.json.encode(payload)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        return await self.request(
            "POST", url, data=body, headers=headers, weight=weight, what=what, deadline=deadline
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        weight: float = 1.0,
        what: str = "",
        deadline: Deadline | None = None,
        into: BinaryIO | None = None,
    ) -> bytes:
        """One request with retries; the body of the first 2xx answer.

        With ``into`` (a binary file) the body is streamed into it instead
        (rewritten from its start on each attempt) and ``b""`` is returned, so
        a large download never sits in memory. Each attempt (waiting for the rate limiter aside) must end within
        ``request_timeout_s``; everything, waits and retries included, within
        ``deadline`` when one is given.
        """
        label = what or f"{method} {url}"
        config = self.config
        attempts = config.retries + 1
        last = "no attempt made"
        timed_out = False
        loop = asyncio.get_running_loop()
        for attempt in range(attempts):
            self._check_deadline(deadline, label, last)
            try:
                async with asyncio.timeout_at(None if deadline is None else deadline.at):
                    await self.limiter.acquire(weight)
            except TimeoutError:
                self._check_deadline(deadline, label, "waiting for the rate limiter")
                raise
            delay: float | None = None
            self.stats.requests += 1
            ends = loop.time() + config.request_timeout_s
            timed_out = False
            try:
                async with asyncio.timeout_at(ends if deadline is None else min(ends, deadline.at)):
                    answer = await self._attempt(method, url, data, headers, label, into)
                if answer.body is not None:
                    return answer.body
                last = f"HTTP {answer.status}" + (f" ({answer.detail})" if answer.detail else "")
                if answer.retry_after is not None:
                    if answer.retry_after > config.max_retry_after_s:
                        self.stats.failures += 1
                        raise NetworkError(
                            f"{label}: HTTP {answer.status}: server asks to retry after {answer.retry_after:g}s "
                            f"(more than max_retry_after_s={config.max_retry_after_s:g})"
                        )
                    delay = answer.retry_after
            except aiohttp.ConnectionTimeoutError:
                last = f"no connection within {config.connect_timeout_s:g}s (connect timeout)"
            except TimeoutError:
                self._check_deadline(deadline, label, "no complete answer")
                if loop.time() >= ends:
                    timed_out = True
                    last = f"no complete answer within {config.request_timeout_s:g}s (request deadline)"
                else:
                    last = f"no answer within {config.read_timeout_s:g}s (read timeout)"
            except aiohttp.ClientPayloadError as error:
                last = f"truncated response ({_one_line(error)})"
            except aiohttp.ClientConnectionError as error:
                last = f"connection failed ({_one_line(error)})"
            except aiohttp.ClientResponseError as error:
                last = f"bad response ({_one_line(error)})"
            if attempt + 1 < attempts:
                self.stats.retries += 1
                pause = self.backoff(attempt) if delay is None else delay
                self._check_deadline(deadline, label, last, margin=pause)  # no sleeping past it
                await asyncio.sleep(pause)
        self.stats.failures += 1
        error_type = DeadlineError if timed_out else NetworkError
        raise error_type(f"{label}: {last}, after {attempts} attempt{'s' if attempts > 1 else ''}")

    def _check_deadline(self, deadline: Deadline | None, label: str, last: str, *, margin: float = 0.0) -> None:
        """Raise :class:`DeadlineError` (naming the last failure) once ``deadline`` is
        less than ``margin`` seconds away."""
        if deadline is not None and deadline.remaining() <= margin:
            self.stats.failures += 1
            raise DeadlineError(f"{label}: not finished within the {deadline.what} (last: {last}); stopped")

    async def _attempt(
        self,
        method: str,
        url: str,
        data: bytes | None,
        headers: dict[str, str] | None,
        label: str,
        into: BinaryIO | None = None,
    ) -> _Answer:
        """One attempt, following same-origin redirects.

        A 2xx answer comes with its body; a 429 or 5xx without, but with its
        retry hint; any other status raises.
        """
        session = self._get_session()
        target = URL(url)
        origin = _origin(target)
        for _hop in range(MAX_REDIRECTS + 1):
            async with session.request(
                method, target, data=data, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return _Answer(status, await self._read_capped(response, label, into))
                if status in _REDIRECTS and "Location" in response.headers:
                    try:
                        following = target.join(URL(response.headers["Location"]))
                    except ValueError:
                        following = URL()  # not a URL: refused below like another origin
                    if _origin(following) != origin:
                        self.stats.failures += 1
                        shown = following.origin() if following.is_absolute() else "an invalid Location"
                        raise RedirectRefusedError(
                            f"{label}: HTTP {status} redirect from {target.origin()} to {shown} "
                            "refused (only redirects within the same scheme, host and port are followed)"
                        )
                    if status == 303 or (status in (301, 302) and method == "POST"):
                        method, data = "GET", None  # what browsers and aiohttp do
                    target = following
                    continue
                detail = await self._read_snippet(response)
                if status == 429 or status >= 500:
                    return _Answer(status, None, parse_retry_after(response.headers.get("Retry-After")), detail)
                self.stats.failures += 1
                raise HttpStatusError(
                    f"{label}: HTTP {status} from {target}" + (f": {detail}" if detail else ""), status
                )
        self.stats.failures += 1
        raise RedirectRefusedError(f"{label}: more than {MAX_REDIRECTS} redirects from {url}; stopped")

    async def _read_capped(
        self, response: aiohttp.ClientResponse, label: str, into: BinaryIO | None = None
    ) -> bytes:
        cap = self.config.max_response_bytes
        length = response.content_length
        if length is not None and length > cap:
            self.stats.failures += 1
            raise NetworkError(f"{label}: response of {length} bytes exceeds the cap of {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        if into is not None:
            into.seek(0)
            into.truncate()
        async for chunk in response.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > cap:
                self.stats.failures += 1
                raise NetworkError(f"{label}: response exceeds the cap of {cap} bytes")
            if into is not None:
                into.write(chunk)
            else:
                chunks.append(chunk)
        self.stats.bytes_received += size
        return b"".join(chunks)

    @staticmethod
    async def _read_snippet(response: aiohttp.ClientResponse) -> str:
        """The start of an error body, for the message (never more than 4 KiB read)."""
        try:
            raw = await response.content.read(4096)
        except (aiohttp.ClientError, TimeoutError):
            return ""
        return _one_line(raw.decode("utf-8", "replace"))[:200]


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
