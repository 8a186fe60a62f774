"""money range and currency scales

Every money column gets a CHECK that keeps it within +-(10^18 - 1) minor units and, on SQLite
(whose columns accept any type), a CHECK that it holds an integer, so that an overflowing sum
can never be stored as a float. SQLite cannot add a CHECK to a table: batch mode rebuilds each
table (copy, drop, rename) with its existing constraints and indexes; env.py turns foreign keys
off around it. A row that already breaks a new rule stops the migration with a message naming
it (run `wallet reconcile` to see the damage).

`currencies` records each currency's scale the first time the ledger uses it. Currencies already
present are recorded by the first process that starts on the upgraded database, with the scale it
is configured with (the data cannot tell what scale its amounts were written with).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 00:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

MAX_MINOR = 10**18 - 1

# table -> [(column, lowest value, nullable)]
MONEY = {
    'accounts': [('balance', -MAX_MINOR, False)],
    'transactions': [('amount', 0, False), ('balance_after', -MAX_MINOR, True)],
    'entries': [('amount', -MAX_MINOR, False)],
    'stakes': [('amount', 0, False)],
}


def upgrade() -> None:
    op.create_table('currencies',
    sa.Column('code', sa.String(length=10), nullable=False),
    sa.Column('scale', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('scale BETWEEN 0 AND 18', name=op.f('ck_currencies_scale')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_currencies'))
    )
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table, columns in MONEY.items():
        _refuse_existing_damage(table, columns, sqlite)
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, low, nullable in columns:
                batch_op.create_check_constraint(
                    op.f(f'ck_{table}_{column}_in_range'), f'{column} BETWEEN {low} AND {MAX_MINOR}')
                if sqlite:
                    rule = (f"typeof({column}) IN ('integer', 'null')" if nullable
                            else f"typeof({column}) = 'integer'")
                    batch_op.create_check_constraint(op.f(f'ck_{table}_{column}_integer'), rule)


def _refuse_existing_damage(table: str, columns: list[tuple[str, int, bool]], sqlite: bool) -> None:
    for column, low, _ in columns:
        bad = f'{column} NOT BETWEEN {low} AND {MAX_MINOR}'
        if sqlite:
            bad += f" OR typeof({column}) NOT IN ('integer', 'null')"
        count = op.get_bind().exec_driver_sql(f'SELECT count(*) FROM {table} WHERE {bad}').scalar()
        if count:
            raise RuntimeError(
                f'{count} row(s) of {table}.{column} are outside the storage range (+-{MAX_MINOR}) or not integers; '
                'the ledger is damaged: run `wallet reconcile`, repair, then upgrade again')


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table, columns in reversed(MONEY.items()):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, _, _ in columns:
                if sqlite:
                    batch_op.drop_constraint(op.f(f'ck_{table}_{column}_integer'), type_='check')
                batch_op.drop_constraint(op.f(f'ck_{table}_{column}_in_range'), type_='check')
    op.drop_table('currencies')
