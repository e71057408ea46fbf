"""``python -m intentq.cli``: the same as the ``intentq`` command."""

from intentq.cli.app import main

main()
