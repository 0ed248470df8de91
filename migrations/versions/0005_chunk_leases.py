"""chunk leases, job queues and interrupted recordings

A worker holding a chunk renews a lease on it (``lease_owner``, ``lease_expires_at``, ``heartbeat_at``); a
chunk whose lease expired is queued again by any live worker's sweep. ``queued_at`` says when a chunk was last
sent, so one that nobody took while its queue is empty (its message was lost) is sent again. A job records
the queue its chunks go to, so a sweeper sends them to the right workers, and a recording lease
(``jobs.lease_expires_at``) that ``submit`` renews while it records, so a job whose submit died is marked
``interrupted`` instead of staying ``recording`` for ever.

Existing queued chunks count as sent now; running chunks get a lease that has already expired, so the first
sweep queues them again (their workers ran a version without heartbeats).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('queue', sa.String(length=64), nullable=False, server_default='annotate'))
        batch.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('job_chunks') as batch:
        batch.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_index('ix_job_chunks_status', ['status'])
    op.execute("UPDATE job_chunks SET queued_at = CURRENT_TIMESTAMP WHERE status = 'queued'")
    op.execute("UPDATE job_chunks SET lease_expires_at = CURRENT_TIMESTAMP WHERE status = 'running'")


def downgrade() -> None:
    with op.batch_alter_table('job_chunks') as batch:
        batch.drop_index('ix_job_chunks_status')
        for column in ('queued_at', 'heartbeat_at', 'lease_expires_at', 'lease_owner'):
            batch.drop_column(column)
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('lease_expires_at')
        batch.drop_column('queue')
