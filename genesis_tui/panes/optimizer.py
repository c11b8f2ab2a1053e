"""Optimizer pane: progress, leaderboard, convergence, best equity, heatmap, validation."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widgets import Label, ProgressBar, Static

from engine.telemetry import StudyTelemetry, TrialRow
from genesis_tui import format as fmt
from genesis_tui.panes._base import Pane, section, set_text, set_title
from genesis_tui.widgets import HeatmapView, LineChart, RowTable

SORT_COLUMNS = ("rank", "value", "trial", "duration")
#: The leaderboard is refilled at most this often while a study runs (re-rendering
#: its cells is the pane's largest cost); sorting and clicks refill it at once.
LEADERBOARD_INTERVAL_S = 1.0


def sort_rows(rows: tuple[TrialRow, ...], key: str, maximize: bool) -> list[TrialRow]:
    """The leaderboard ordered by ``key`` (rank = best objective first)."""
    if key == "trial":
        return sorted(rows, key=lambda r: r.number)
    if key == "duration":
        return sorted(rows, key=lambda r: -r.duration_s)
    missing = float("-inf") if maximize else float("inf")
    ordered = sorted(rows, key=lambda r: missing if r.value is None else r.value, reverse=maximize)
    return ordered if key == "rank" else list(reversed(ordered))


class OptimizerPane(Pane):
    """The running study."""

    TITLE = "Optimizer"
    PART = "study"
    NOT_RUNNING = "no study running (ctrl+p → 'Run study from file')"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "cycle_sort", "Sort"),
    ]

    class TrialChosen(Message):
        """The user asked to open a trial (Enter on a leaderboard row)."""

        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.sort_key = "rank"
        self._study: StudyTelemetry | None = None
        self._filled_at = -1e9

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="study-progress"):
            yield ProgressBar(total=100, show_eta=False, id="study-bar")
            yield Label("", id="study-figures")
        yield Label("", id="study-counts")
        with section("Leaderboard", id="leaderboard-box"):
            yield RowTable("#", "trial", "value", "params", "time", right=("#", "trial", "value", "time"), cursor=True, id="leaderboard")
        with section("Best so far", id="convergence-box"):
            yield LineChart(colors=("chart-1",), empty="convergence: waiting for trials", id="convergence")
        with section("Best trial equity", id="best-equity-box"):
            yield LineChart(colors=("chart-3",), empty="equity: waiting for the best trial", id="best-equity")
        with section("Objective heatmap", id="heatmap-box"):
            yield HeatmapView(id="heatmap")
        with section("Validation", id="validation-box"):
            yield Static("", id="validation")

    def render_part(self, study: StudyTelemetry) -> None:
        self._study = study
        bar = self.query_one("#study-bar", ProgressBar)
        loading = study.loading
        if loading is not None:  # the data downloads: its files or pages stand where the trials will
            bar.update(total=None if loading.total is None else max(1, loading.total), progress=loading.done)
            set_text(self.query_one("#study-figures", Label), f" loading data: {loading.text()}")
        else:
            bar.update(total=max(1, study.total), progress=study.done)
            eta = fmt.seconds(study.eta_s) if study.state == "running" else study.state
            set_text(
                self.query_one("#study-figures", Label),
                f" {fmt.count(study.done)}/{fmt.count(study.total)} trials · "
                f"{fmt.rate(study.trials_per_s)} · ETA {eta}"
            )
        best = "—" if study.best_value is None else f"{study.best_value:.4f} (#{study.best_trial})"
        parts: list[str | tuple[str, str]] = [
            (f"{study.name} ", "bold"),
            (study.state.upper(), state_style(study.state)),
            f"  {study.sampler}/{study.backend}×{study.workers}  running {study.running} · "
            f"failed {study.failed} · pruned {study.pruned}  best {study.objective} {best}",
        ]
        if study.checkpointed_at is not None:
            parts.append(f"  checkpoint {fmt.clock(study.checkpointed_at)} ({fmt.count(study.checkpoint_trials)})")
        if study.drivers:
            parts.append("  drivers " + ", ".join(
                f"{d.host}:{d.pid} {d.state} {fmt.count(d.trials)} @ {fmt.rate(d.trials_per_s)}" for d in study.drivers
            ))
        if study.message:
            parts.append((f"  {study.message}", "italic"))
        set_text(self.query_one("#study-counts", Label), Content.assemble(*parts))
        if study.state != "running" or time.monotonic() - self._filled_at >= LEADERBOARD_INTERVAL_S:
            self._fill_leaderboard()
        self.query_one("#convergence", LineChart).set_series(study.convergence)
        self.query_one("#best-equity", LineChart).set_series(study.best_equity)
        self.query_one("#heatmap", HeatmapView).set_heatmap(study.heatmap)
        set_text(self.query_one("#validation", Static), _validation_text(study) + importance_text(study), layout=True)

    def _fill_leaderboard(self) -> None:
        study = self._study
        if study is None:
            return
        self._filled_at = time.monotonic()
        table = self.query_one("#leaderboard", RowTable)
        rows = sort_rows(study.leaderboard, self.sort_key, study.direction == "maximize")
        by_value = sort_rows(study.leaderboard, "rank", study.direction == "maximize")
        rank = {row.number: i + 1 for i, row in enumerate(by_value)}
        table.set_rows(
            [
                (str(rank[r.number]), str(r.number), fmt.metric(study.objective, r.value, 4), fmt.params(r.params), fmt.seconds(r.duration_s))
                for r in rows
            ],
            keys=[str(r.number) for r in rows],
        )
        set_title(self.query_one("#leaderboard-box"), f"Leaderboard (by {self.sort_key}; s to sort, enter to open)")

    def action_cycle_sort(self) -> None:
        """Sort the leaderboard by the next column."""
        self.sort_key = SORT_COLUMNS[(SORT_COLUMNS.index(self.sort_key) + 1) % len(SORT_COLUMNS)]
        self._fill_leaderboard()

    @on(RowTable.HeaderSelected, "#leaderboard")
    def _header_clicked(self, event: RowTable.HeaderSelected) -> None:
        key = {"#": "rank", "trial": "trial", "value": "value", "time": "duration"}.get(event.column)
        if key:
            self.sort_key = key
            self._fill_leaderboard()

    def open_selected(self) -> None:
        """Open the trial under the leaderboard's cursor (the best one until it moves)."""
        self._choose(self.query_one("#leaderboard", RowTable).cursor_key)

    @on(RowTable.RowSelected, "#leaderboard")
    def _row_chosen(self, event: RowTable.RowSelected) -> None:
        self._choose(event.key)

    def _choose(self, row_key: str | None) -> None:
        if row_key is not None:  # the row key is the trial number
            self.post_message(self.TrialChosen(int(row_key)))


def state_style(state: str) -> str:
    """The style of a study state word (theme variables only)."""
    return {"running": "bold $success", "paused": "bold $warning", "failed": "bold $error"}.get(state, "bold $secondary")


def _validation_text(study: StudyTelemetry) -> Text:
    v = study.validation
    if v is None:
        if study.state == "complete":
            return Text("no validation stored for this study ([validation] out_of_sample = 0, or it did not run)", style="dim")
        return Text("validation: runs when the study completes ([validation] in the study file)", style="dim")
    text = Text()
    names = [k for k, _ in v.in_sample]
    oos = dict(v.out_of_sample)
    text.append(f"{'metric':<14}{'in-sample':>12}{'out-of-sample':>15}\n", style="bold")
    for name, value in v.in_sample:
        text.append(f"{name:<14}{fmt.metric(name, value):>12}{fmt.metric(name, oos.get(name)):>15}\n")
    for name, value in v.out_of_sample:
        if name not in names:
            text.append(f"{name:<14}{'—':>12}{fmt.metric(name, value):>15}\n")
    dsr = "—" if v.deflated_sharpe is None else f"{v.deflated_sharpe:.3f}"
    text.append(f"deflated Sharpe {dsr} over {v.trials_considered} trials", style="bold")
    if v.probability_overfit is not None:
        text.append(f" · P(overfit) {v.probability_overfit:.2f}")
    if v.folds:
        text.append(f" · {v.folds} walk-forward folds")
    return text


def importance_text(study: StudyTelemetry, width: int = 20) -> Text:
    """One bar per parameter: the share of the objective's variance it explains alone."""
    text = Text()
    if not study.importance:
        return text
    text.append(f"\nparameter importance ({study.objective})\n", style="bold")
    label = max(len(name) for name, _ in study.importance[:8])
    for name, share in study.importance[:8]:
        filled = round(max(0.0, min(1.0, share)) * width)
        text.append(f"{name:<{label}} ")
        text.append("█" * filled, style="bold")
        text.append("░" * (width - filled), style="dim")
        text.append(f" {100 * share:5.1f}%\n")
    return text
