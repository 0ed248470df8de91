"""add image phash

Each image gets a 256-bit perceptual hash (64 hex digits, ``imagehash.phash``) so that re-encoded or resized
copies of one photo can be kept on one side of an exported split. The column is nullable: the pipeline fills
it when it decodes an image, and images recorded before this revision are hashed when a split first needs them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('images', sa.Column('phash', sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Not a batch operation: on SQLite that rebuilds the table, and dropping the old `images` would cascade
    # into faces and predictions. SQLite 3.35+ and PostgreSQL drop a column in place.
    op.drop_column('images', 'phash')
