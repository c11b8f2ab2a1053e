"""The Genesis performance suite (not part of the default test run).

Each module here measures one area against a reference measured in the same
run and is callable from ``genesis bench``.
"""
