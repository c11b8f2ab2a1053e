"""A pooled HTTP client for market-data services.

One :class:`HttpService` owns one lazily created ``aiohttp.ClientSession``
with a bounded connection pool, connect and read timeouts, a cap on response
size, a client-side weighted rate limiter, and retries with exponential
backoff and jitter on connection errors, timeouts, truncated bodies, 5xx and
429 (honouring ``Retry-After``). Other 4xx answers are not retried. Close the
service (``await service.close()`` or ``async with``) when done.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec

from engine.errors import NetworkError


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Limits of one HTTP service."""

    max_connections: int = 8
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
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

    async def post_json(self, url: str, payload: Any, *, weight: float = 1.0, what: str = "") -> bytes:
        """POST ``payload`` as JSON; return the raw response body of a 2xx answer.

        ``what`` names the request in errors (``hyperliquid BTC 1h``). Raises
        :class:`NetworkError` once retries are exhausted, at once for a body
        over the size cap, and :class:`HttpStatusError` for a non-retried 4xx.
        """
        body = msgspec.json.encode(payload)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        return await self.request("POST", url, data=body, headers=headers, weight=weight, what=what)

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        weight: float = 1.0,
        what: str = "",
    ) -> bytes:
        """One request with retries; the body of the first 2xx answer."""
        label = what or f"{method} {url}"
        config = self.config
        attempts = config.retries + 1
        last = "no attempt made"
        for attempt in range(attempts):
            await self.limiter.acquire(weight)
            delay: float | None = None
            self.stats.requests += 1
            try:
                session = self._get_session()
                async with session.request(method, url, data=data, headers=headers) as response:
                    status = response.status
                    if 200 <= status < 300:
                        return await self._read_capped(response, label)
                    detail = await self._read_snippet(response)
                    if status == 429 or status >= 500:
                        last = f"HTTP {status}" + (f" ({detail})" if detail else "")
                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                        if retry_after is not None:
                            if retry_after > config.max_retry_after_s:
                                self.stats.failures += 1
                                raise NetworkError(
                                    f"{label}: HTTP {status}: server asks to retry after "
                                    f"{retry_after:g}s (more than max_retry_after_s={config.max_retry_after_s:g})"
                                )
                            delay = retry_after
                    else:
                        self.stats.failures += 1
                        raise HttpStatusError(
                            f"{label}: HTTP {status} from {url}" + (f": {detail}" if detail else ""), status
                        )
            except aiohttp.ConnectionTimeoutError:
                last = f"no connection within {config.connect_timeout_s:g}s (connect timeout)"
            except TimeoutError:
                last = f"no answer within {config.read_timeout_s:g}s (read timeout)"
            except aiohttp.ClientPayloadError as error:
                last = f"truncated response ({_one_line(error)})"
            except aiohttp.ClientConnectionError as error:
                last = f"connection failed ({_one_line(error)})"
            except aiohttp.ClientResponseError as error:
                last = f"bad response ({_one_line(error)})"
            if attempt + 1 < attempts:
                self.stats.retries += 1
                await asyncio.sleep(self.backoff(attempt) if delay is None else delay)
        self.stats.failures += 1
        raise NetworkError(f"{label}: {last}, after {attempts} attempt{'s' if attempts > 1 else ''}")

    async def _read_capped(self, response: aiohttp.ClientResponse, label: str) -> bytes:
        cap = self.config.max_response_bytes
        length = response.content_length
        if length is not None and length > cap:
            self.stats.failures += 1
            raise NetworkError(f"{label}: response of {length} bytes exceeds the cap of {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > cap:
                self.stats.failures += 1
                raise NetworkError(f"{label}: response exceeds the cap of {cap} bytes")
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
