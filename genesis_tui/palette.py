"""Genesis commands for the command palette (ctrl+p)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from genesis_tui.app import GenesisApp


@dataclass(frozen=True, slots=True)
class PaletteCommand:
    name: str
    help: str
    run: Callable[[], object]


def genesis_commands(app: GenesisApp) -> list[PaletteCommand]:
    """Every Genesis command the palette offers right now (trials from the last snapshot)."""
    from genesis_tui.panes import PANES

    commands = [
        PaletteCommand("Run study from file…", "Start a study TOML (stops and checkpoints the running one)", app.action_start_study),
        PaletteCommand("Pause study", "Stop dispatching trials; workers finish the ones in hand", app.action_pause),
        PaletteCommand("Resume study", "Dispatch trials again", app.action_resume),
        PaletteCommand("Stop study", "Stop and write a checkpoint (resumable)", app.action_stop),
        PaletteCommand("Take profile capture", "cProfile + tracemalloc for a few seconds", app.action_capture),
        PaletteCommand("Toggle paper loop", "Start or pause the paper-trading loop", app.action_toggle_paper),
        PaletteCommand("Kill switch", "Halt paper trading and flatten positions", app.action_kill_switch),
        PaletteCommand("Open trial by number…", "Params, metrics, equity and trades of a trial", app.action_open_trial_prompt),
        PaletteCommand("Compare studies…", "Studies of this store side by side (as genesis compare)", app.action_compare_studies_prompt),
    ]
    for name in sorted(app.available_themes):
        commands.append(PaletteCommand(f"Theme: {name}", "Switch theme (remembered)", partial(app.action_set_theme, name)))
    for pane_id, label, _ in PANES:
        commands.append(PaletteCommand(f"Go to {label}", f"Show the {label} pane", partial(app.action_show_pane, pane_id)))
    commands.extend(strategy_commands(app))
    study = app.last_telemetry.study if app.last_telemetry else None
    if study is not None:
        for row in study.leaderboard[:10]:
            commands.append(
                PaletteCommand(f"Open trial #{row.number}", f"{study.objective} {row.value}", partial(app.action_open_trial, row.number))
            )
    return commands


def strategy_commands(app: GenesisApp) -> list[PaletteCommand]:
    """``Backtest NAME`` for every strategy found: the built-ins, then the user's strategies folder."""
    from engine.backtest.strategies import STRATEGIES, available
    from engine.errors import GenesisError

    try:
        found = available()
    except GenesisError as error:  # a user file that does not import: the built-ins, and say why
        found = dict(STRATEGIES)
        app.notify(str(error), title="strategies folder", severity="warning")
    return [
        PaletteCommand(
            f"Backtest {name}",
            f"{strategy.description or strategy.rule} · defaults, trades on the chart"
            + ("" if strategy.builtin else f" · {strategy.where}"),
            partial(app.action_backtest_strategy, name),
        )
        for name, strategy in found.items()
    ]


class GenesisCommandProvider(Provider):
    """Study, profiler, paper-loop, theme, pane and trial commands."""

    @property
    def _genesis_app(self) -> GenesisApp:
        return cast("GenesisApp", self.app)

    async def discover(self) -> Hits:
        for command in genesis_commands(self._genesis_app):
            if command.name.startswith(("Theme:", "Open trial #")):
                continue
            yield DiscoveryHit(command.name, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in genesis_commands(self._genesis_app):
            score = matcher.match(command.name)
            if score > 0:
                yield Hit(score, matcher.highlight(command.name), command.run, help=command.help)
