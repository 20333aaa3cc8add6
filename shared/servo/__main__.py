"""``python -m servo``: the CLI without its console script (the worker image runs a vendored copy)."""

from servo.cli import main

main()
