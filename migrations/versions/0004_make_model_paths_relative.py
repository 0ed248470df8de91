"""make model paths relative

Model files were recorded by absolute path, so a home restored from a backup or mounted at another path lost
every model. A file under ANNOTATE_HOME is now recorded relative to it (``models/gender/gender-v1.keras``);
this revision rewrites the existing absolute paths that lie under the home this migration runs with. Paths
outside the home stay absolute. The downgrade makes relative paths absolute again under the same home.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

MODEL_VERSIONS = sa.table('model_versions', sa.column('id', sa.Integer), sa.column('path', sa.String))


def _home() -> Path:
    from annotator.settings import Settings

    return Settings.from_env().home.expanduser().absolute()


def _rewrite(change) -> None:  # type: ignore[no-untyped-def]
    connection = op.get_bind()
    rows = connection.execute(sa.select(MODEL_VERSIONS.c.id, MODEL_VERSIONS.c.path)).all()
    for id_, path in rows:
        new = change(path)
        if new != path:
            connection.execute(MODEL_VERSIONS.update().where(MODEL_VERSIONS.c.id == id_).values(path=new))


def upgrade() -> None:
    home = _home()

    homes = (home, home.resolve())  # the path as configured, and with its symlinks followed

    def relative(path: str) -> str:
        absolute = Path(path)
        for root in homes:
            if absolute.is_absolute() and absolute.is_relative_to(root):
                return absolute.relative_to(root).as_posix()
        return path

    _rewrite(relative)


def downgrade() -> None:
    home = _home()
    _rewrite(lambda path: path if Path(path).is_absolute() else str(home / PurePosixPath(path)))
