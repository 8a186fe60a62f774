"""transactions by (client, reference)

An index for the payout cap of SettleBatch (a betflex pool's `overdraw`): the core sums the
applied payouts of one client with one reference (`pool:<uid>`) on every batch that names a
cap, across every callback ever; without the index that sum reads the whole table. Adding an
index changes no data; it works the same on SQLite and PostgreSQL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 00:00:00
"""
from alembic import op


revision = '0004'
# written beside issue 12's other migration (0003, the audit trail): whichever merges second
# names the other as its down_revision, so that the chain stays one line
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transactions_client_reference'), ['client', 'reference'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transactions_client_reference'))
