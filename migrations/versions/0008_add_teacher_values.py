"""add teacher values

Values that offline teacher models (`annotate teach`) gave a face, one row per face, attribute and teacher. They
are their own source: never labels (people) and never predictions (the chain's versions), so human labels keep
winning and the chain's staleness is untouched.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'teacher_values',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('face_id', sa.Integer(), nullable=False),
        sa.Column('attribute', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Double(), nullable=False),
        sa.Column('teacher', sa.String(length=64), nullable=False),
        sa.Column('extra', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['face_id'], ['faces.id'], name=op.f('fk_teacher_values_face_id_faces'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_teacher_values')),
        sa.UniqueConstraint('face_id', 'attribute', 'teacher', name=op.f('uq_teacher_values_face_id_attribute_teacher')),
    )


def downgrade() -> None:
    op.drop_table('teacher_values')
