"""private look-ups (protocol v2): entries, their change cursor, reports' entry ids

``entries`` holds one sealed answer per identifier (docs/private-lookups.md §5);
``entry_cursor`` hands out the replica's change numbers. Reports gain the OPRF key
version and entry ids, filled when a report is registered or re-registered.

The council setting ``lookup_protocol`` tells the SDK which protocol its look-ups use:
on a database that already holds reports it starts at 1 (their entries appear only
as reporters re-register them; runbook "Moving to private look-ups"), on an empty one
at 2.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('entries',
    sa.Column('oprf_version', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('id_type', sa.String(length=16), nullable=False),
    sa.Column('entry_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('sealed', sa.LargeBinary(length=38), nullable=True),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('oprf_version', 'entry_id', name=op.f('pk_entries'))
    )
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.create_index('ix_entries_bucket', ['oprf_version', 'bucket'], unique=False,
                              postgresql_include=['entry_id', 'sealed'],
                              postgresql_where=sa.text('deleted_at IS NULL'),
                              sqlite_where=sa.text('deleted_at IS NULL'))
        batch_op.create_index('ix_entries_seq', ['oprf_version', 'seq'], unique=False)

    cursor = op.create_table('entry_cursor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entry_cursor'))
    )
    op.bulk_insert(cursor, [{'id': 1, 'seq': 0}])

    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('oprf_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('entry_id', sa.LargeBinary(length=16), nullable=True))
        batch_op.add_column(sa.Column('folded_entry_id', sa.LargeBinary(length=16),
                                      nullable=True))
        batch_op.create_index('ix_reports_entry', ['oprf_version', 'entry_id'], unique=False)
        batch_op.create_index('ix_reports_folded_entry', ['oprf_version', 'folded_entry_id'],
                              unique=False,
                              postgresql_where=sa.text('folded_entry_id IS NOT NULL'),
                              sqlite_where=sa.text('folded_entry_id IS NOT NULL'))

    bind = op.get_bind()
    has_reports = bind.execute(sa.text('SELECT 1 FROM reports LIMIT 1')).first() is not None
    settings = sa.table('council_settings', sa.column('key', sa.String),
                        sa.column('value', sa.JSON))
    op.bulk_insert(settings, [{'key': 'private.lookup_protocol', 'value': 1 if has_reports else 2}])


def downgrade() -> None:
    op.execute("DELETE FROM council_settings WHERE key LIKE 'private.%'")
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index('ix_reports_folded_entry')
        batch_op.drop_index('ix_reports_entry')
        batch_op.drop_column('folded_entry_id')
        batch_op.drop_column('entry_id')
        batch_op.drop_column('oprf_version')
    op.drop_table('entry_cursor')
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.drop_index('ix_entries_seq')
        batch_op.drop_index('ix_entries_bucket')
    op.drop_table('entries')
