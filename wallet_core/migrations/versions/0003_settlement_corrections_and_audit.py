"""settlement corrections, player debt, receivable accounts, operator audit trail

- accounts: kind `receivable` (one per client and currency, holding minus what players owe);
  `debt` on user wallets (what the player owes after a clawback), never negative, and only on a
  wallet that holds nothing. A receivable account is added for every (client, currency) that
  already has system accounts.
- transactions: purposes `unsettle` and `resettle` (the correcting transactions).
- settlement_failures: how an entry was resolved (settled by a later call, or resolved /
  dismissed by an operator), by whom and why.
- audit_log: every operator action, written with its money movement.

SQLite cannot change a CHECK in place: batch mode rebuilds the tables (env.py turns foreign
keys off around it).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

MAX_MINOR = 10**18 - 1
OLD_KINDS = "kind IN ('user', 'in_play', 'house', 'cashier')"
NEW_KINDS = "kind IN ('user', 'in_play', 'house', 'cashier', 'receivable')"
OLD_PURPOSES = "purpose IN ('stake', 'withdrawal', 'payout', 'deposit', 'adjustment', 'cancel')"
NEW_PURPOSES = "purpose IN ('stake', 'withdrawal', 'payout', 'deposit', 'adjustment', 'cancel', 'unsettle', 'resettle')"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('debt', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.drop_constraint(op.f('ck_accounts_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_accounts_kind'), NEW_KINDS)
        batch_op.create_check_constraint(op.f('ck_accounts_debt_in_range'), f'debt BETWEEN 0 AND {MAX_MINOR}')
        batch_op.create_check_constraint(op.f('ck_accounts_debt_only_on_empty_wallet'),
                                         "debt = 0 OR (kind = 'user' AND balance = 0)")
        if sqlite:
            batch_op.create_check_constraint(op.f('ck_accounts_debt_integer'), "typeof(debt) = 'integer'")
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_transactions_purpose'), type_='check')
        batch_op.create_check_constraint(op.f('ck_transactions_purpose'), NEW_PURPOSES)
    with op.batch_alter_table('settlement_failures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolution', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('resolution_note', sa.String(length=512), nullable=True))
    op.execute("UPDATE settlement_failures SET resolution = 'settled' WHERE resolved_at IS NOT NULL")
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('client', sa.String(length=128), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('transaction_id', sa.String(length=128), nullable=False),
    sa.Column('target', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.String(length=512), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_client_id'), ['client', 'id'], unique=False)
    # every (client, currency) with system accounts gets its receivable account
    op.execute(
        "INSERT INTO accounts (client, kind, user_id, currency, balance, status, created_at, debt) "
        "SELECT client, 'receivable', '', currency, 0, 'active', min(created_at), 0 FROM accounts "
        "WHERE kind = 'house' GROUP BY client, currency"
    )


def downgrade() -> None:
    bind = op.get_bind()
    owed = bind.exec_driver_sql("SELECT count(*) FROM accounts WHERE debt <> 0 OR (kind = 'receivable' AND balance <> 0)").scalar()
    corrections = bind.exec_driver_sql("SELECT count(*) FROM transactions WHERE purpose IN ('unsettle', 'resettle')").scalar()
    if owed or corrections:
        raise RuntimeError('the ledger holds settlement corrections or player debt, which revision 0002 cannot '
                           'represent; it cannot be downgraded')
    sqlite = bind.dialect.name == 'sqlite'
    op.execute("DELETE FROM accounts WHERE kind = 'receivable'")
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_client_id'))
    op.drop_table('audit_log')
    with op.batch_alter_table('settlement_failures', schema=None) as batch_op:
        batch_op.drop_column('resolution_note')
        batch_op.drop_column('resolved_by')
        batch_op.drop_column('resolution')
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_transactions_purpose'), type_='check')
        batch_op.create_check_constraint(op.f('ck_transactions_purpose'), OLD_PURPOSES)
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        if sqlite:
            batch_op.drop_constraint(op.f('ck_accounts_debt_integer'), type_='check')
        batch_op.drop_constraint(op.f('ck_accounts_debt_only_on_empty_wallet'), type_='check')
        batch_op.drop_constraint(op.f('ck_accounts_debt_in_range'), type_='check')
        batch_op.drop_constraint(op.f('ck_accounts_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_accounts_kind'), OLD_KINDS)
        batch_op.drop_column('debt')
