"""The Genesis console: a Textual app over an engine's telemetry and commands.

The app never reaches into engine internals. It polls ``source.telemetry()``
(an immutable :class:`~engine.telemetry.Telemetry`) on a timer that is re-armed
only after the previous poll has been rendered, so polls never overlap and a
slow frame delays the next poll instead of queueing stale ones; only the
visible pane renders. Commands (pause, resume, stop, ...) are the source's
coroutines, run as workers so the UI keeps answering keys while they wait.

The console gives it an :class:`~engine.runtime.EngineThread`: the engine runs
on its own loop in its own thread, so a frame painted here never delays the bus
or the paper loop (docs/console.md). Whatever ends the app (``q``, a signal, an
error in the UI) closes the source, which checkpoints the study.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer
from textual.widgets import Footer, Static, TabbedContent, TabPane

from engine.errors import GenesisError
from engine.telemetry import Telemetry, TelemetrySource
from genesis_tui import format as fmt
from genesis_tui.palette import GenesisCommandProvider
from genesis_tui.panes import PANES, Pane
from genesis_tui.panes._base import set_text
from genesis_tui.panes.optimizer import OptimizerPane, state_style
from genesis_tui.screens import CompareScreen, HelpScreen, PromptScreen, TradesScreen, TrialScreen
from genesis_tui.themes import (
    DEFAULT_THEME,
    THEME_VARIABLE_DEFAULTS,
    load_themes,
    remember_theme,
    remembered_theme,
)

if TYPE_CHECKING:
    from engine.backtest.inspect import TradeInspection

DEFAULT_REFRESH_HZ = 4.0
#: Seconds after start-up (and after a pane's first render) before the heap is frozen.
SETTLE_AFTER_S = 1.5
#: Seconds between two panes of the warm-up (a key pressed meanwhile waits for one pane's layout at most).
WARM_UP_GAP_S = 0.1


class GenesisApp(App[int]):
    """The operator console."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "Genesis"
    COMMANDS: ClassVar = App.COMMANDS | {GenesisCommandProvider}
    # textual declares these `ClassVar[...] | None`, which mypy reads as instance variables.
    HORIZONTAL_BREAKPOINTS: ClassVar = [(0, "-narrow"), (140, "-wide")]  # type: ignore[misc]
    VERTICAL_BREAKPOINTS: ClassVar = [(0, "-short"), (40, "-tall")]  # type: ignore[misc]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_console", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("p", "pause", "Pause"),
        Binding("r", "resume", "Resume"),
        Binding("x", "stop", "Stop"),
        Binding("c", "capture", "Capture"),
        Binding("t", "toggle_paper", "Paper"),
        Binding("K", "kill_switch", "Kill", show=False),
        Binding("o", "start_study", "Open study", show=False),
        Binding("s", "sort_leaderboard", "Optimizer: sort the leaderboard", show=False),
        Binding("h", "cycle_heatmap", "Optimizer: heatmap of the next two parameters", show=False),
        Binding("enter", "open_selected_trial", "Optimizer: open the selected trial", show=False),
        *[
            Binding(str(i + 1), f"show_pane('{pane_id}')", label, show=False)
            for i, (pane_id, label, _) in enumerate(PANES)
        ],
    ]

    def __init__(
        self,
        source: TelemetrySource,
        *,
        refresh_hz: float = DEFAULT_REFRESH_HZ,
        theme: str | None = None,
        poll: bool = True,
        remember: bool = True,
        startup: Callable[[], Awaitable[object]] | None = None,
        handle_signals: bool = False,
    ) -> None:
        """``poll=False`` renders one snapshot and never polls again (snapshot tests);
        ``startup`` runs once after the first frame (starting the engine, say);
        ``handle_signals``: SIGINT and SIGTERM quit as ``q`` does, with exit code 130 / 143."""
        super().__init__()
        if "TEXTUAL_ANIMATIONS" not in os.environ:
            # An operator console answers at once: no sliding tab underlines.
            self.animation_level = "none"
        self.source = source
        self._startup = startup
        self.first_frame_at: float | None = None
        self.refresh_hz = max(0.2, min(60.0, refresh_hz))
        self.last_telemetry: Telemetry | None = None
        self.frames = 0
        self._poll_enabled = poll
        self._remember = remember
        self._poll_timer: Timer | None = None
        self._poll_chain = 0
        self._warming = False
        self._panes_seen: set[str | None] = set()
        self._quitting = False
        self._source_closed = False
        self._exit_code = 0
        self._handle_signals = handle_signals
        self._faults_shown = 0
        self._requested_theme = theme
        self.theme_problems: tuple[str, ...] = ()
        self._register_genesis_themes()

    # ----------------------------------------------------------------- themes
    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(THEME_VARIABLE_DEFAULTS)

    def _register_genesis_themes(self) -> None:
        loaded = load_themes()
        for theme in loaded.themes:
            self.register_theme(theme)
        self.theme_problems = loaded.problems
        wanted = self._requested_theme or remembered_theme() or DEFAULT_THEME
        if wanted not in self.available_themes:
            problem = f"theme {wanted!r} not found; using {DEFAULT_THEME if DEFAULT_THEME in self.available_themes else 'textual-dark'}"
            self.theme_problems = (*self.theme_problems, problem)
            wanted = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
        self.theme = wanted

    def _theme_changed(self, theme: Theme) -> None:
        if self._remember:
            remember_theme(theme.name)
        # panes drawn with theme-derived colours (charts, heatmap) repaint
        for pane in self.query(Pane):
            pane.refresh(recompose=False)

    # ----------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield Static("Genesis", id="status")
        with TabbedContent(id="tabs"):
            for pane_id, label, pane_class in PANES:
                with TabPane(label, id=f"tab-{pane_id}"):
                    yield pane_class(id=f"pane-{pane_id}")
        yield Footer()

    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        for problem in self.theme_problems:
            self.notify(problem, title="Themes", severity="warning", timeout=8)
        self._apply_breakpoints()
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self._signalled, signum)
        self._poll()
        self.call_after_refresh(self._first_frame)

    def _apply_breakpoints(self) -> None:
        """Set the screen's size classes (-wide, -tall, ...) before the first layout.

        Textual sets them on the screen's first resize, after a first layout at
        the narrow size; panes laid out then would keep the narrow sizes.
        """
        width, height = self.size
        classes = {name: False for _, name in [*self.HORIZONTAL_BREAKPOINTS, *self.VERTICAL_BREAKPOINTS]}
        for extent, breakpoints in ((width, self.HORIZONTAL_BREAKPOINTS), (height, self.VERTICAL_BREAKPOINTS)):
            reached = [name for edge, name in sorted(breakpoints) if extent >= edge]
            if reached:
                classes[reached[-1]] = True
        self.screen.update_classes(classes)

    def _warm_up_panes(self, waiting: list[str] | None = None) -> None:
        """Lay out the hidden panes once each, one per frame, under the visible one.

        A widget's first size makes Textual lay the screen out a second time,
        so a pane's first view cost two frames. Laid out here, after start-up,
        filled with the current snapshot and on a layer under the visible pane
        (so nothing shows), a pane keeps its sizes once hidden again, and its
        first view is one frame. A pane switch ends the warm-up.
        """
        found = self._main_tabs()
        if found is None:
            self._warming = False
            return
        main, tabs = found
        if waiting is None:
            waiting = [pane.id for pane in main.query(TabPane) if pane.id and pane.id != tabs.active]
            self._warming = True
        # a screen over the panes (help, a trial) would not lay them out: the warm-up ends
        if not self._warming or not waiting or self._quitting or self.screen is not main:
            self._end_warm_up()
            return
        tab_pane = main.query_one(f"#{waiting[0]}", TabPane)
        if self.last_telemetry is not None:
            tab_pane.query_one(Pane).show(self.last_telemetry)
        main.add_class("-warming")
        tab_pane.add_class("-warming")
        tab_pane.display = True

        pane = tab_pane.query_one(Pane)
        tries = [0]

        def laid_out() -> None:
            # A widget asks the screen for a layout from its own idle handler, so the screen can
            # go idle (and run this) before the shown pane has asked: it was then never laid out.
            if self._warming and not pane.container_size and self.screen is main and tries[0] < 5:
                tries[0] += 1
                self.call_after_refresh(laid_out)
                return
            tab_pane.remove_class("-warming")
            if self._warming:
                tab_pane.display = False
                self.set_timer(WARM_UP_GAP_S, lambda: self._warm_up_panes(waiting[1:]))

        self.call_after_refresh(laid_out)

    @property
    def warming_up(self) -> bool:
        """Whether the hidden panes are still being laid out (see :meth:`_warm_up_panes`)."""
        return self._warming

    def _end_warm_up(self) -> None:
        """Stop warming up (a pane switch): only the active pane stays displayed."""
        if not self._warming:
            return
        self._warming = False
        found = self._main_tabs()
        if found is None:
            return
        main, tabs = found
        main.remove_class("-warming")
        for pane in main.query(TabPane):
            pane.remove_class("-warming")
            pane.display = pane.id == tabs.active

    def _main_tabs(self) -> tuple[Screen, TabbedContent] | None:
        """The screen holding the panes and its tabs (None once the console is closing)."""
        try:
            main = self.screen_stack[0]
            return main, main.query_one("#tabs", TabbedContent)
        except (IndexError, NoMatches):
            return None

    def _first_frame(self) -> None:
        self.first_frame_at = time.perf_counter()
        if self._startup is not None:
            self._run_startup()
        else:
            self.set_timer(SETTLE_AFTER_S, self._warm_up_panes)

    @work(group="startup")
    async def _run_startup(self) -> None:
        assert self._startup is not None
        try:
            await self._startup()
        except GenesisError as error:
            self.notify(str(error), title="Start-up", severity="error", timeout=15)
        self.refresh_now()
        self.set_timer(SETTLE_AFTER_S, self._warm_up_panes)
        self.set_timer(SETTLE_AFTER_S + 1.0, self._settle_heap)

    def _settle_heap(self) -> None:
        """Move the objects alive now out of the garbage collector's reach.

        A full collection walks every tracked object: with the engine, the
        widgets and their render caches that is a 100-160 ms pause, long enough
        to make a key press feel slow. What exists once start-up (or a pane's
        first render) is over lives as long as the console, so it is frozen;
        later collections only walk what was made since.
        """
        gc.collect(1)
        gc.freeze()

    def _signalled(self, signum: int) -> None:
        """SIGINT / SIGTERM: quit as ``q`` does (checkpoint first), exiting 130 / 143."""
        self._exit_code = 128 + signum
        self.call_later(self.action_quit_console)

    async def on_unmount(self) -> None:
        gc.unfreeze()  # the console is gone: its objects are garbage like any other
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        # the app ended some other way than q (an error in the UI): the engine checkpoints and stops
        await self._close_source()

    async def _close_source(self) -> None:
        if self._source_closed:
            return
        self._source_closed = True
        started = time.perf_counter()
        try:
            await self.source.close()
        except GenesisError as error:
            self.log.error(f"engine close failed: {error}")
        self.log.info(f"engine closed in {time.perf_counter() - started:.2f}s")

    def get_system_commands(self, screen: Screen) -> Iterator[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Genesis help", "Keys and commands", self.action_help)

    # ---------------------------------------------------------------- polling
    def _poll(self, chain: int | None = None) -> None:
        """Take one snapshot, render it, then re-arm the timer (polls never overlap).

        ``chain`` is the poll that armed the timer: a timer that fired while
        :meth:`refresh_now` stopped it is stale and ignored, or every forced
        poll would start one more chain of polls.
        """
        if chain is not None and chain != self._poll_chain:
            return
        self._poll_chain += 1
        self._poll_timer = None
        try:
            telemetry = self.source.telemetry()
        except Exception as error:  # the engine failing must not take the console down
            self.log.error(f"telemetry failed: {error!r}")
        else:
            self.apply_telemetry(telemetry)
        if self._poll_enabled and not self._quitting:
            current = self._poll_chain
            self._poll_timer = self.set_timer(
                1.0 / self.refresh_hz, lambda: self._poll(current), name="telemetry-poll"
            )

    def apply_telemetry(self, telemetry: Telemetry) -> None:
        """Render ``telemetry``: the status line and the visible pane."""
        self.last_telemetry = telemetry
        self.frames += 1
        for fault in telemetry.faults[self._faults_shown :]:
            self.notify(fault, title="Engine error", severity="error", timeout=30)
        self._faults_shown = len(telemetry.faults)
        try:
            status = self.query_one("#status", Static)
        except NoMatches:  # shutting down: the main screen is gone
            return
        set_text(status, status_line(telemetry))
        pane = self.visible_pane()
        if pane is not None:
            pane.show(telemetry)

    def visible_pane(self) -> Pane | None:
        tabs = self.query_one("#tabs", TabbedContent)
        active = tabs.active
        if not active:
            return None
        return self.query_one(f"#pane-{active.removeprefix('tab-')}", Pane)

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._end_warm_up()  # a click on a tab
        pane = self.visible_pane()
        if pane is not None and self.last_telemetry is not None:
            pane.show(self.last_telemetry)
        if pane is not None and pane.id not in self._panes_seen:
            self._panes_seen.add(pane.id)
            self.set_timer(SETTLE_AFTER_S, self._settle_heap)  # its render caches now exist

    # --------------------------------------------------------------- commands
    @work(group="engine-command")
    async def run_command(self, label: str, command: Callable[[], Awaitable[str]]) -> None:
        """Run one engine command, reporting its one-line result or error."""
        try:
            message = await command()
        except GenesisError as error:
            self.notify(str(error), title=label, severity="error", timeout=6)
        else:
            self.notify(message or "done", title=label, timeout=3)
        self.refresh_now()

    def refresh_now(self) -> None:
        """Poll at once (after a command) instead of waiting for the timer."""
        if self._poll_timer is not None:
            self._poll_timer.stop()
        if not self._quitting:
            self._poll()

    def action_pause(self) -> None:
        self.run_command("Pause", self.source.pause)

    def action_resume(self) -> None:
        self.run_command("Resume", self.source.resume)

    def action_stop(self) -> None:
        self.run_command("Stop", self.source.stop)

    def action_capture(self) -> None:
        self.run_command("Profile capture", self.source.capture_profile)

    def action_toggle_paper(self) -> None:
        self.run_command("Paper loop", self.source.toggle_paper)

    def action_kill_switch(self) -> None:
        self.run_command("Kill switch", self.source.kill_switch)

    def action_cycle_heatmap(self) -> None:
        if isinstance(self.visible_pane(), OptimizerPane):
            self.run_command("Heatmap", self.source.cycle_heatmap)

    def action_start_study(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.run_command("Run study", lambda: self.source.start_study(path))

        self.push_screen(PromptScreen("Run study from file", "path/to/study.toml"), chosen)

    def action_open_trial_prompt(self) -> None:
        def chosen(text: str | None) -> None:
            if not text:
                return
            try:
                number = int(text.lstrip("#"))
            except ValueError:
                self.notify(f"not a trial number: {text!r}", severity="error")
                return
            self.action_open_trial(number)

        self.push_screen(PromptScreen("Open trial", "trial number"), chosen)

    @work(group="open-trial", exclusive=True)
    async def action_open_trial(self, number: int) -> None:
        try:
            detail = await self.source.open_trial(number)
        except GenesisError as error:
            self.notify(str(error), title=f"Trial #{number}", severity="error")
            return
        await self.push_screen(TrialScreen(detail))

    def action_compare_studies_prompt(self) -> None:
        def chosen(text: str | None) -> None:
            if text:
                self.action_compare_studies(tuple(text.replace(",", " ").split()))

        self.push_screen(PromptScreen("Compare studies", "two or more study names: A B [C...]"), chosen)

    @work(group="compare", exclusive=True)
    async def action_compare_studies(self, names: tuple[str, ...]) -> None:
        try:
            comparison = await self.source.compare_studies(names)
        except GenesisError as error:
            self.notify(str(error), title="Compare studies", severity="error")
            return
        await self.push_screen(CompareScreen(comparison))

    @work(group="inspect", exclusive=True)
    async def action_inspect_trial(self, number: int) -> None:
        """Trial ``number`` re-run and opened on the trade screen."""
        self.notify(f"re-running trial #{number}…", timeout=2)
        await self._show_trades(f"Trial #{number}", self.source.inspect_trial(number))

    @work(group="inspect", exclusive=True)
    async def action_backtest_strategy(self, name: str) -> None:
        """A backtest of strategy ``name`` (defaults) opened on the trade screen."""
        self.notify(f"backtesting {name}…", timeout=2)
        await self._show_trades(f"Backtest {name}", self.source.backtest_strategy(name))

    async def _show_trades(self, title: str, pending: Awaitable[TradeInspection]) -> None:
        try:
            inspection = await pending
        except GenesisError as error:
            self.notify(str(error), title=title, severity="error")
            return
        await self.push_screen(TradesScreen(inspection))

    @on(OptimizerPane.TrialChosen)
    def _trial_chosen(self, event: OptimizerPane.TrialChosen) -> None:
        self.action_open_trial(event.number)

    def action_set_theme(self, name: str) -> None:
        if name not in self.available_themes:
            self.notify(f"no theme named {name!r}", severity="error")
            return
        self.theme = name
        self.notify(f"theme {name}", timeout=2)

    def action_show_pane(self, pane_id: str) -> None:
        self._end_warm_up()
        # Fill the pane before it is shown, so the switch and its fresh figures
        # are one frame (filled on TabActivated, they were a second frame).
        if self.last_telemetry is not None:
            self.query_one(f"#pane-{pane_id}", Pane).show(self.last_telemetry)
        self.query_one("#tabs", TabbedContent).active = f"tab-{pane_id}"

    # The Optimizer's keys work whatever has the focus (moving the focus into the
    # pane on every switch would restyle and repaint the whole screen a second time).
    def action_sort_leaderboard(self) -> None:
        pane = self.visible_pane()
        if isinstance(pane, OptimizerPane):
            pane.action_cycle_sort()

    def action_open_selected_trial(self) -> None:
        pane = self.visible_pane()
        if isinstance(pane, OptimizerPane):
            pane.open_selected()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        keys = [
            (binding.key_display or binding.key, binding.description)
            for binding in self._bindings_for_help()
        ]
        self.push_screen(HelpScreen(keys))

    def _bindings_for_help(self) -> list[Binding]:
        rows: list[Binding] = []
        for binding in self.BINDINGS:
            if isinstance(binding, Binding):
                rows.append(binding)
        rows.append(Binding("1-7", "", "switch pane (Overview … Alerts)"))
        rows.append(Binding("ctrl+p", "", "command palette"))
        return [b for b in rows if not b.key[:1].isdigit() or b.key == "1-7"]

    async def action_quit(self) -> None:
        """ctrl+q quits the same way as q: checkpoint first."""
        await self.action_quit_console()

    async def action_quit_console(self) -> None:
        """Stop the study with a checkpoint, stop the engine, then exit."""
        if self._quitting:
            return
        self._quitting = True
        if self._poll_timer is not None:
            self._poll_timer.stop()
        self.notify("stopping: checkpointing the study…", timeout=10)
        await self._close_source()
        self.exit(self._exit_code, return_code=self._exit_code)


def status_line(t: Telemetry) -> Content:
    """The one-line summary at the top of every pane."""
    parts: list[str | tuple[str, str]] = [("Genesis ", "bold $accent"), (f"{t.workspace}  ", "$text-muted")]
    if t.study is not None:
        s = t.study
        parts += [f"{s.name} ", (s.state, state_style(s.state))]
        if s.loading is not None:
            parts.append(f" loading data: {s.loading.text()}  ")
        else:
            parts.append(f" {fmt.count(s.done)}/{fmt.count(s.total)} best {fmt.metric(s.objective, s.best_value)}  ")
    else:
        parts.append(("no study  ", "$text-muted"))
    if t.faults:
        parts.append(("engine error  ", "bold $error"))
    active = t.active_alerts
    if active:
        style = "bold $error" if active[0].severity == "critical" else "bold $warning"
        parts.append((f"⚠ {len(active)} alert{'s' if len(active) > 1 else ''}  ", style))
    if t.bus is not None:
        parts.append(f"bus {fmt.rate(t.bus.rate)}  ")
    if t.trading is not None:
        kill = " KILL" if t.trading.kill_switch else ""
        parts.append(f"paper {fmt.num(t.trading.equity)}{kill}  ")
    if t.system is not None:
        parts.append(f"cpu {t.system.cpu_percent:.0f}%  ")
    return Content.assemble(*parts)
