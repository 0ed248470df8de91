"""record gender version of predictions

A regressor's value depends on the gender probabilities it was given, so each prediction now names the gender
version it was computed with (a gender prediction names its own). Whether a prediction is current then follows
from the active versions alone, and a new gender version gets new regressor rows instead of colliding with
the old ones.

Existing regressor rows get the gender version whose prediction for the same face was written last at or
before them: the pipeline writes a face's gender row first, in the same transaction as its regressor rows, and
never rewrote a regressor row afterwards.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

OLD_UNIQUE = 'uq_predictions_face_id_attribute_model_version_id'
NEW_UNIQUE = 'uq_predictions_face_attribute_versions'
FOREIGN_KEY = 'fk_predictions_gender_version_id_model_versions'

BACKFILL = [
    "UPDATE predictions SET gender_version_id = model_version_id WHERE attribute = 'gender'",
    # The gender row the pipeline wrote for this face just before this regressor row.
    """UPDATE predictions SET gender_version_id = (
           SELECT g.model_version_id FROM predictions g
           WHERE g.face_id = predictions.face_id AND g.attribute = 'gender' AND g.created_at <= predictions.created_at
           ORDER BY g.created_at DESC, g.id DESC LIMIT 1)
       WHERE gender_version_id IS NULL""",
    """UPDATE predictions SET gender_version_id = (
           SELECT g.model_version_id FROM predictions g
           WHERE g.face_id = predictions.face_id AND g.attribute = 'gender'
           ORDER BY g.created_at, g.id LIMIT 1)
       WHERE gender_version_id IS NULL""",
    # No gender row for the face at all (not something the pipeline writes): pointing at the row's own version
    # keeps the column NOT NULL and makes the row stale, since no active gender version can have that id.
    "UPDATE predictions SET gender_version_id = model_version_id WHERE gender_version_id IS NULL",
]


def upgrade() -> None:
    with op.batch_alter_table('predictions') as batch:
        batch.add_column(sa.Column('gender_version_id', sa.Integer(), nullable=True))
    for statement in BACKFILL:
        op.execute(statement)
    with op.batch_alter_table('predictions') as batch:
        batch.alter_column('gender_version_id', existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(FOREIGN_KEY, 'model_versions', ['gender_version_id'], ['id'])
        batch.drop_constraint(OLD_UNIQUE, type_='unique')
        batch.create_unique_constraint(NEW_UNIQUE, ['face_id', 'attribute', 'model_version_id', 'gender_version_id'])


def downgrade() -> None:
    # The old constraint allows one row per model version: keep the newest of each.
    op.execute("""DELETE FROM predictions WHERE id NOT IN (
                      SELECT keep FROM (SELECT max(id) AS keep FROM predictions
                                        GROUP BY face_id, attribute, model_version_id) AS newest)""")
    with op.batch_alter_table('predictions') as batch:
        batch.drop_constraint(NEW_UNIQUE, type_='unique')
        batch.drop_constraint(FOREIGN_KEY, type_='foreignkey')
        batch.drop_column('gender_version_id')
        batch.create_unique_constraint(OLD_UNIQUE, ['face_id', 'attribute', 'model_version_id'])
