"""Webhooks against a real aiohttp server on 127.0.0.1: success, 500 then retries, timeouts; runs never fail."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.headless.notify import Notifier, NotifySettings, post_json
from tests.headless.conftest import GENESIS, env, write_study


@dataclass
class Hook:
    """A webhook server: answers with ``statuses`` in turn (then the last one), after ``delay_s``."""

    statuses: list[int] = field(default_factory=lambda: [200])
    delay_s: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self.events.append(request.headers.get("X-Genesis-Event", ""))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.statuses[min(len(self.received) - 1, len(self.statuses) - 1)]
        return web.Response(status=status, text="ok" if status < 300 else "nope")


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    state = Hook()
    app = web.Application()
    app.router.add_post("/hook", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_a_delivered_notification(hook: Hook) -> None:
    delivery = await post_json(hook.url, {"study": "s", "trials": 3}, event="finish", timeout_s=30, retries=2)
    assert delivery.ok and delivery.attempts == 1 and delivery.status == 200
    assert hook.received == [{"study": "s", "trials": 3}] and hook.events == ["finish"]


async def test_500_is_retried_until_it_succeeds(hook: Hook) -> None:
    hook.statuses = [500, 502, 200]
    delivery = await post_json(hook.url, {"x": 1}, event="finish", timeout_s=30, retries=3, backoff_s=0.01)
    assert delivery.ok and delivery.attempts == 3 and len(hook.received) == 3


async def test_500_every_time_gives_up_after_the_retries_without_raising(hook: Hook) -> None:
    hook.statuses = [500]
    delivery = await post_json(hook.url, {"x": 1}, event="failure", timeout_s=30, retries=2, backoff_s=0.01)
    assert not delivery.ok and delivery.attempts == 3 and delivery.error == "HTTP 500"


async def test_a_client_error_is_not_retried(hook: Hook) -> None:
    hook.statuses = [404]
    delivery = await post_json(hook.url, {"x": 1}, event="finish", timeout_s=30, retries=3, backoff_s=0.01)
    assert not delivery.ok and delivery.attempts == 1 and delivery.status == 404


async def test_a_slow_server_times_out_and_is_retried(hook: Hook) -> None:
    hook.delay_s = 1.0
    delivery = await post_json(hook.url, {"x": 1}, event="finish", timeout_s=0.2, retries=1, backoff_s=0.01)
    assert not delivery.ok and delivery.attempts == 2 and "timed out" in (delivery.error or "")


async def test_nothing_listening_is_a_logged_failure() -> None:
    notifier = Notifier(NotifySettings("http://127.0.0.1:9/hook", retries=1, timeout_s=1), backoff_s=0.01)
    delivery = await notifier.send("finish", {"study": "s"})
    assert delivery is not None and not delivery.ok and delivery.attempts == 2


async def test_events_not_asked_for_are_not_sent(hook: Hook) -> None:
    notifier = Notifier(NotifySettings(hook.url, on=("failure",)))
    assert await notifier.send("finish", {"study": "s"}) is None
    assert hook.received == []


def _study_with_hook(directory: Path, name: str, url: str, extra: str = "", timeout_s: float = 30.0) -> Path:
    """A study posting to ``url``; the timeout is generous unless a test is about timing out
    (a loaded machine must not turn a delivered POST into a retried one)."""
    path = write_study(directory, name=name)
    path.write_text(path.read_text() + f'\n[notify]\nwebhook = "{url}"\ntimeout_s = {timeout_s}\nretries = 2\n{extra}')
    return path


async def _run(*args: str | Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *GENESIS, *map(str, args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env()
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_run_posts_its_summary(hook: Hook, tmp_path: Path) -> None:
    study = _study_with_hook(tmp_path, "hooked", hook.url)
    code, out, err = await _run("run", study, "--db", tmp_path / "s.db", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert hook.events == ["finish"]
    posted = hook.received[0]
    assert posted["event"] == "finish" and posted["study"] == "hooked" and posted["state"] == "complete"
    assert posted["trials"] == summary["trials"] and posted["best"]["key"] == summary["best"]["key"]
    assert posted["exit_code"] == 0 and posted["report"]["md"].endswith("report.md")
    assert summary["notifications"] == [
        {"event": "finish", "ok": True, "attempts": 1, "status": 200, "error": None,
         "elapsed_s": summary["notifications"][0]["elapsed_s"]}
    ]


async def test_a_failing_webhook_never_fails_the_run(hook: Hook, tmp_path: Path) -> None:
    hook.statuses = [500]
    study = _study_with_hook(tmp_path, "hook500", hook.url)
    code, out, err = await _run("run", study, "--db", tmp_path / "s.db", "--json")
    assert code == 0, err
    assert len(hook.received) == 3  # the first POST and two retries
    assert json.loads(out)["notifications"][0]["ok"] is False
    assert "webhook finish: not delivered after 3 attempts (HTTP 500)" in err


async def test_a_webhook_that_times_out_never_fails_the_run(hook: Hook, tmp_path: Path) -> None:
    hook.delay_s = 1.5
    study = _study_with_hook(tmp_path, "hookslow", hook.url, timeout_s=0.5)  # the hook answers after 1.5 s
    code, out, err = await _run("run", study, "--db", tmp_path / "s.db", "--quiet")
    assert code == 0 and out == ""
    assert len(hook.received) == 3
    # --quiet: the one line the docs promise, not one per attempt
    assert err.splitlines() == ["genesis: webhook finish: not delivered after 3 attempts (timed out after 0.5s)"]


async def test_a_critical_alert_posts_and_exits_3(hook: Hook, tmp_path: Path) -> None:
    extra = "\n[alerts]\nmemory_mb = { warning = 1, critical = 2 }\nmin_duration_s = 0\n"
    study = _study_with_hook(tmp_path, "critical", hook.url, extra)
    code, out, err = await _run("run", study, "--db", tmp_path / "s.db", "--json")
    assert code == 3, err
    summary = json.loads(out)
    assert summary["exit_code"] == 3 and summary["state"] == "complete"
    assert summary["alerts"]["critical"][0]["rule"] == "memory_mb"
    assert "critical alert: resident memory" in err
    assert hook.events.count("critical") == 1 and hook.events[-1] == "finish"
    alert_post = hook.received[hook.events.index("critical")]
    assert alert_post["alert"]["level"] == "critical" and alert_post["study"] == "critical"


async def test_alerts_land_in_the_store_and_the_report(hook: Hook, tmp_path: Path) -> None:
    extra = "\n[alerts]\nmemory_mb = { warning = 1, critical = 100000 }\nmin_duration_s = 0\n"
    study = _study_with_hook(tmp_path, "warned", hook.url, extra)
    code, out, err = await _run("run", study, "--db", tmp_path / "s.db", "--json")
    assert code == 0, err  # a warning is not critical
    report = json.loads(Path(json.loads(out)["report"]["json"]).read_text())
    assert [a["rule"] for a in report["alerts"] if a["state"] == "raised"] == ["memory_mb"]
    assert "resident memory" in Path(json.loads(out)["report"]["md"]).read_text()


def test_the_global_config_webhook_is_used_when_the_study_names_none(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[notify]\nwebhook = "http://127.0.0.1:9/global"\non = ["failure"]\nretries = 0\n')
    monkeypatch.setenv("GENESIS_CONFIG", str(config))
    settings = NotifySettings.resolve(None)
    assert settings.webhook == "http://127.0.0.1:9/global" and settings.on == ("failure",) and settings.retries == 0
    assert not settings.wants("finish") and settings.wants("failure")
