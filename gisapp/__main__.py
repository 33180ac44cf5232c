"""``python -m gisapp``: the command line."""

from gisapp.cli import main

main()
