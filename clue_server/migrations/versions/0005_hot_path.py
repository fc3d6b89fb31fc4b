"""hot path: quota counters, Redis usage folds, no per-hit rows

Revision ID: 0005
Revises: 0004

``quota_usage`` is the counter each quota check adds to (one row per member, quota and
UTC day), seeded from today's ``daily_usage`` so the upgrade does not hand out a second
day's quota. ``usage_flushes`` makes folding Redis-buffered usage idempotent.
``lookup_hits`` (a row per matched item, never read and never pruned) is dropped: the
day's hit counts stay in ``daily_usage``. ``dispute_reports.report_id`` gets an index of
its own (a look-up asks whether a dispute covers each matched report), and the folded-hash
index of ``reports`` keeps only the rows that have one (e-mail).
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('quota_usage',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('quota', sa.String(length=16), nullable=False),
    sa.Column('used', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_quota_usage_member_id_members')),
    sa.PrimaryKeyConstraint('day', 'member_id', 'quota', name=op.f('pk_quota_usage'))
    )
    op.create_table('usage_flushes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('folded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_flushes'))
    )
    with op.batch_alter_table('usage_flushes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_usage_flushes_folded_at'), ['folded_at'], unique=False)
    with op.batch_alter_table('dispute_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispute_reports_report_id'), ['report_id'], unique=False)
    # Only e-mail reports have a folded hash: index just those.
    op.drop_index('ix_reports_folded_hash', table_name='reports')
    op.create_index('ix_reports_folded_hash', 'reports', ['folded_hash'], unique=False,
                    postgresql_where=sa.text('folded_hash IS NOT NULL'),
                    sqlite_where=sa.text('folded_hash IS NOT NULL'))
    since = ("CURRENT_DATE - 1" if op.get_bind().dialect.name == "postgresql"
             else "date('now', '-1 day')")
    for quota in ('lookups', 'registrations'):
        op.execute(
            "INSERT INTO quota_usage (day, member_id, quota, used) "  # noqa: S608 - constants
            f"SELECT day, member_id, '{quota}', SUM({quota}) FROM daily_usage "
            f"WHERE day >= {since} GROUP BY day, member_id")
    with op.batch_alter_table('lookup_hits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lookup_hits_member_id'))
        batch_op.drop_index(batch_op.f('ix_lookup_hits_at'))
    op.drop_table('lookup_hits')


def downgrade() -> None:
    op.drop_index('ix_reports_folded_hash', table_name='reports')
    op.create_index('ix_reports_folded_hash', 'reports', ['folded_hash'], unique=False)
    with op.batch_alter_table('dispute_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispute_reports_report_id'))
    op.create_table('lookup_hits',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('id_type', sa.String(length=16), nullable=False),
    sa.Column('report_ids', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_lookup_hits_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lookup_hits'))
    )
    with op.batch_alter_table('lookup_hits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lookup_hits_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_lookup_hits_member_id'), ['member_id'], unique=False)
    with op.batch_alter_table('usage_flushes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_flushes_folded_at'))
    op.drop_table('usage_flushes')
    op.drop_table('quota_usage')
