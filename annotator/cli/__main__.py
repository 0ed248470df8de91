"""``python -m annotator.cli`` runs the ``annotate`` command."""

from annotator.cli import main

main()
