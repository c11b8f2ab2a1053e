"""Subcommands of ``genesis``, one module each.

Every module here defines ``NAME`` (the subcommand), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int`` (the exit code). Modules are
imported to build the parser, so they import the engine (and textual) only
inside ``run``: ``genesis backtest`` must start fast and never load textual.
"""
