"""Alembic environment and revisions of the annotate database."""
