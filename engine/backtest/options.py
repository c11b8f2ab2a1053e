"""``BacktestOptions``: the one frozen, validated record of a backtest's options.

Every front end builds this record once and passes it on unchanged: ``genesis
backtest`` (its flags are generated from the fields below), the study file's
``[backtest]`` table (decoded into it directly), the optimizer's workers (the
record travels inside ``WorkerSetup`` to the process and dask backends), the
paper loop (``LoopConfig.backtest``), and ``run``/``run_many``/``run_signals``,
which hand its fields to the kernels. Validation (ranges, enum values, NaN and
infinities refused) happens here and nowhere else; a bad value is one
:class:`OptionError` line naming the option.

Adding an option (a trailing stop, a sizing mode, funding, ...):

1. add one annotated field to :class:`BacktestOptions`: its type, default, and
   ``_rule(interval, help)`` (a number: ``"[0, 1)"``-style interval; an enum: a
   ``Literal`` of its values and ``_rule(None, help)``). The study file key,
   ``[space]`` searches of it, the ``genesis backtest --flag`` and the paper
   config key follow from this line;
2. pass it to the kernel in ``engine/backtest/api.py`` (``simulate`` and
   ``_Group.arrays``) and ``nb.py``, and, if the paper loop should honour it, in
   ``engine/live`` (broker or risk manager).
"""

from __future__ import annotations

import math
import re
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, SupportsFloat

import msgspec

from engine.errors import InputError

__all__ = ["OPTIONS", "OPTION_NAMES", "BacktestOptions", "OptionError", "OptionInfo", "override"]


class OptionError(InputError, ValueError):
    """A bad backtest option: one line naming it (a ``ValueError`` too, so a decoder
    such as ``msgspec`` reports it with the key path of the table it was in)."""


def _rule(interval: str | None, help: str) -> msgspec.Meta:
    """A field's metadata: the closed/open ``interval`` of a number (``None`` for an enum) and its help."""
    return msgspec.Meta(description=help, extra={"interval": interval})


class BacktestOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything a backtest takes besides bars, strategy and parameters (``docs/backtest.md``)."""

    fee: Annotated[float, _rule("[0, 1)", "fee per side, fraction of notional")] = 0.0
    slippage: Annotated[float, _rule("[0, 1)", "fill price moved against the trader, fraction")] = 0.0
    fill: Annotated[
        Literal["next_open", "close"], _rule(None, "fill at the next bar's open or the signal bar's close")
    ] = "next_open"
    direction: Annotated[
        Literal["long", "short", "both"], _rule(None, "long, short, or both (signals reverse the position)")
    ] = "long"
    size: Annotated[float, _rule("(0, 1]", "fraction of equity per entry")] = 1.0
    cash: Annotated[float, _rule("(0, inf)", "starting cash")] = 10_000.0
    stop_loss: Annotated[float, _rule("[0, 1)", "stop-loss, fraction of the entry price (0: off)")] = 0.0
    take_profit: Annotated[float, _rule("[0, inf)", "take-profit, fraction of the entry price (0: off)")] = 0.0
    trailing_stop: Annotated[
        float, _rule("[0, 1)", "trailing stop, fraction below the highest high since entry (0: off)")
    ] = 0.0
    sizing: Annotated[
        Literal["fraction", "risk"], _rule(None, "size entries by a fraction of equity, or by the risk to the stop")
    ] = "fraction"
    risk: Annotated[float, _rule("[0, 1)", "with sizing risk: the fraction of equity a stop-loss fill loses")] = 0.0
    allocation: Annotated[
        Literal["split", "shared"], _rule(None, "a basket's cash: split equally per symbol, or one shared account")
    ] = "split"
    max_positions: Annotated[
        float, _rule("[0, 1000000]", "a shared basket's open positions at most (0: one per symbol)")
    ] = 0.0
    funding: Annotated[
        Literal["auto", "true", "false"],
        _rule(None, "apply perpetual funding payments (auto: when the data carries funding rates)"),
    ] = "auto"

    def __post_init__(self) -> None:
        for info in OPTIONS.values():
            value = getattr(self, info.name)
            checked = info.check(value)
            if checked is not value:
                msgspec.structs.force_setattr(self, info.name, checked)
        if not self.max_positions.is_integer():
            raise OptionError(f"max_positions must be a whole number, got {self.max_positions!r}")
        if self.sizing == "risk" and (self.stop_loss == 0.0 or self.risk == 0.0):
            raise OptionError("sizing risk needs a stop_loss and a risk above 0 (the loss at the stop it sizes by)")

    @property
    def risk_fraction(self) -> float:
        """The kernel's ``risk`` argument: the fraction sized by, 0 for fraction sizing."""
        return self.risk if self.sizing == "risk" else 0.0

    @property
    def checks_stops(self) -> bool:
        """Whether any stop is set (the kernel variant that checks each bar's high and low)."""
        return self.stop_loss > 0.0 or self.take_profit > 0.0 or self.trailing_stop > 0.0

    @classmethod
    def of(cls, options: BacktestOptions | None = None, /, **values: Any) -> BacktestOptions:
        """``options`` (the defaults when ``None``) with ``values`` applied; unknown names are errors."""
        if options is not None and not isinstance(options, BacktestOptions):
            raise OptionError(f"options must be a BacktestOptions, got {type(options).__name__}")
        if not values:
            return options if options is not None else _DEFAULT
        _known(values)
        return cls(**values) if options is None else msgspec.structs.replace(options, **values)

    def replace(self, **values: Any) -> BacktestOptions:
        """A copy with ``values`` changed (validated; unknown names are errors)."""
        return BacktestOptions.of(self, **values)

    def as_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)


@dataclass(frozen=True, slots=True)
class OptionInfo:
    """What one option accepts, read from its field: an enum's values or a number's interval."""

    name: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()  # an enum option's values; empty for a number
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    interval: str = ""  # as declared, for messages: "[0, 1)"

    @property
    def flag(self) -> str:
        """The command-line flag: ``--stop-loss`` for ``stop_loss``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """``value`` if valid (a number as a ``float``), else an :class:`OptionError` naming the option."""
        if self.choices:
            if isinstance(value, str) and value in self.choices:
                return value
            raise OptionError(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
        if type(value) is not float:
            if isinstance(value, bool) or not isinstance(value, _number_types()):
                raise OptionError(f"{self.name} must be a number in {self.interval}, got {value!r}")
            value = float(value)
        ok = math.isfinite(value)
        ok = ok and (value > self.low if self.low_open else value >= self.low)
        ok = ok and (value < self.high if self.high_open else value <= self.high)
        if not ok:
            raise OptionError(f"{self.name} must be a number in {self.interval}, got {value!r}")
        return value


def _number_types() -> tuple[type[SupportsFloat], ...]:
    """The number types an option takes: numpy's scalars only once numpy is loaded (no value can
    be one before), so that building the command line's flags does not import numpy."""
    np = sys.modules.get("numpy")
    return (int, float) if np is None else (int, float, np.integer, np.floating)


_INTERVAL = re.compile(r"^([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])$")


def _infos() -> dict[str, OptionInfo]:
    hints = typing.get_type_hints(BacktestOptions, include_extras=True)
    infos: dict[str, OptionInfo] = {}
    for name, default in zip(BacktestOptions.__struct_fields__, BacktestOptions.__struct_defaults__, strict=True):
        kind, meta = typing.get_args(hints[name])
        interval = meta.extra["interval"]
        if interval is None:
            infos[name] = OptionInfo(name, default, meta.description, choices=typing.get_args(kind))
            continue
        match = _INTERVAL.match(interval)
        assert match is not None, f"BacktestOptions.{name}: bad interval {interval!r}"
        left, low, high, right = match.groups()
        infos[name] = OptionInfo(
            name, default, meta.description, low=float(low), high=float(high),
            low_open=left == "(", high_open=right == ")", interval=interval,
        )  # fmt: skip
    return infos


#: Each option's name -> what it accepts (and its help), in field order.
OPTIONS: Mapping[str, OptionInfo] = _infos()
#: The option names, in field order: the keys of ``[backtest]`` and the options ``[space]`` may search.
OPTION_NAMES: tuple[str, ...] = tuple(OPTIONS)
_DEFAULT = BacktestOptions()


def _known(values: Mapping[str, Any]) -> None:
    for name in values:
        if name not in OPTIONS:
            raise OptionError(f"unknown backtest option {name!r} (known: {', '.join(OPTION_NAMES)})")


def override(
    base: BacktestOptions, values: Mapping[str, Any], memo: dict[Any, BacktestOptions]
) -> BacktestOptions:
    """``base`` with one trial's option ``values`` applied, validated once per distinct ``values``.

    ``memo`` belongs to the caller and to this ``base`` (one per batch or per
    worker): a sweep that searches ``stop_loss`` over three values builds three
    records however many trials it runs.
    """
    if not values:
        return base
    try:
        key = tuple(sorted(values.items()))
        options = memo.get(key)
    except TypeError:  # an unhashable value: let the record say what is wrong with it
        return base.replace(**values)
    if options is None:
        options = memo[key] = base.replace(**values)
    return options
