"""``python -m raybandit`` is the same as the ``raybandit`` command."""

from raybandit.cli import main

main()
