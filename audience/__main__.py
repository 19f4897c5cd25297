"""``python -m audience``: the same as the installed ``audience`` command."""

from audience.cli import main

main()
