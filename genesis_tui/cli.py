"""The ``genesis`` command: parse arguments, dispatch to a subcommand, map errors
to exit codes.

Errors the user caused (``engine.errors.InputError`` and friends) print one line
on stderr and exit with their code; there is never a traceback for bad input.
Set ``GENESIS_DEBUG=1`` to see tracebacks of internal failures.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import TYPE_CHECKING, NoReturn

import genesis_tui.commands as commands_package
from genesis_tui import __version__

if TYPE_CHECKING:  # (imported where used: ``genesis run`` starts its workers' server before them)
    import argparse
    from collections.abc import Sequence
    from types import ModuleType

DEFAULT_COMMAND = "tui"

#: The exit code :func:`_leave_without_teardown` ends the process with (``None``: a normal exit).
_quick_exit_code: int | None = None


def _leave_without_teardown() -> None:
    """The last exit handler: end the ``genesis`` process without the interpreter's teardown.

    Every other exit handler has run by then (this one is registered first, at
    import), and every non-daemon thread has been joined; what is left is
    freeing modules and objects one by one, which takes 0.1-0.3 s once numba
    and LLVM are loaded, all the while a caller reading the command's output
    (a cron wrapper, ``$(genesis run ...)``) waits for it.
    """
    if _quick_exit_code is None:
        return
    import logging

    logging.shutdown()  # (registered before this module by an early import of logging: runs after it otherwise)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken pipe: nothing more to say
            pass
    os._exit(_quick_exit_code)


atexit.register(_leave_without_teardown)


def _parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    class _Parser(argparse.ArgumentParser):
        """An argument parser whose usage errors are one line on stderr and exit 2."""

        def error(self, message: str) -> NoReturn:
            self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    return _Parser


def _command_modules() -> dict[str, ModuleType]:
    import importlib
    import pkgutil

    modules: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(commands_package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands_package.__name__}.{info.name}")
        modules[module.NAME] = module
    return modules


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The top-level parser and the subcommand modules by name."""
    parser_class = _parser_class()
    parser = parser_class(
        prog="genesis",
        description="Genesis: backtests, parameter studies and a live console for trading research.",
    )
    parser.add_argument("--version", action="version", version=f"genesis {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    modules = _command_modules()
    for name, module in modules.items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genesis`` command; returns (and exits with) the exit code."""
    global _quick_exit_code
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["run"]:
        from genesis_tui.commands.run import start_workers_early

        start_workers_early(args_list[1:])
    parser, modules = build_parser()
    starts_with_option = bool(args_list) and args_list[0].startswith("-")
    wants_console = not args_list or (starts_with_option and args_list[0] not in ("-h", "--help", "--version"))
    if wants_console and DEFAULT_COMMAND in modules:
        args_list = [DEFAULT_COMMAND, *args_list]
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 0
    code = run_command(modules[args.command], args)
    if argv is None:
        if getattr(modules[args.command], "QUICK_EXIT", False):
            _quick_exit_code = code
        sys.exit(code)
    return code


def run_command(module: ModuleType, args: argparse.Namespace) -> int:
    """Run one subcommand, turning Genesis errors into one line and an exit code."""
    from engine.errors import GenesisError

    try:
        return int(module.run(args) or 0)
    except GenesisError as error:
        _print_error(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        _print_error("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as error:  # an internal failure: one line unless debugging
        if os.environ.get("GENESIS_DEBUG"):
            raise
        _print_error(f"internal error: {type(error).__name__}: {error} (set GENESIS_DEBUG=1 for a traceback)")
        return 1


def _print_error(message: str) -> None:
    first_line = " ".join(message.split("\n")).strip()
    print(f"genesis: {first_line}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    main()
