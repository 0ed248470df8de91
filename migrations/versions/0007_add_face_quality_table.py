"""add face quality table

One row per face with its brightness and sharpness and the data-quality flags they raise (very dark or bright,
blurry, low detector score). The chunk pipeline writes it where it already holds the aligned face; faces
recorded before this revision are measured by `annotate report` when it needs them, so nothing is computed here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'face_quality',
        sa.Column('face_id', sa.Integer(), nullable=False),
        sa.Column('brightness', sa.Double(), nullable=True),
        sa.Column('sharpness', sa.Double(), nullable=True),
        sa.Column('dark', sa.Boolean(), nullable=False),
        sa.Column('bright', sa.Boolean(), nullable=False),
        sa.Column('blurry', sa.Boolean(), nullable=False),
        sa.Column('low_score', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['face_id'], ['faces.id'], name=op.f('fk_face_quality_face_id_faces'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('face_id', name=op.f('pk_face_quality')),
    )


def downgrade() -> None:
    op.drop_table('face_quality')
