"""``python -m cda`` runs the ``cda`` CLI."""

from cda.cli import app

app()
