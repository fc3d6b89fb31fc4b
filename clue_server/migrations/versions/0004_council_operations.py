"""council operations

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_event_id', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    op.create_table('council_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_council_settings'))
    )
    op.create_table('staff_users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_users')),
    sa.UniqueConstraint('username', name=op.f('uq_staff_users_username'))
    )
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.LargeBinary(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['audit_events.id'], name=op.f('fk_audit_checkpoints_event_id_audit_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoints'))
    )
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_checkpoints_event_id'), ['event_id'], unique=False)

    op.create_table('daily_usage',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('id_type', sa.String(length=16), nullable=False),
    sa.Column('lookups', sa.Integer(), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('registrations', sa.Integer(), nullable=False),
    sa.Column('quota_rejections', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_daily_usage_member_id_members')),
    sa.PrimaryKeyConstraint('day', 'member_id', 'id_type', name=op.f('pk_daily_usage'))
    )
    op.create_table('disputes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('opened_by', sa.String(length=32), nullable=False),
    sa.Column('id_type', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('pepper_version', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['opened_by'], ['members.id'], name=op.f('fk_disputes_opened_by_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes'))
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disputes_opened_by'), ['opened_by'], unique=False)
        batch_op.create_index(batch_op.f('ix_disputes_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_disputes_token_hash'), ['token_hash'], unique=False)

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

    op.create_table('member_quotas',
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('daily_lookups', sa.Integer(), nullable=True),
    sa.Column('daily_registrations', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_quotas_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_quotas'))
    )
    op.create_table('dispute_reports',
    sa.Column('dispute_id', sa.String(length=40), nullable=False),
    sa.Column('report_id', sa.String(length=40), nullable=False),
    sa.Column('reporter_id', sa.String(length=32), nullable=False),
    sa.Column('answer', sa.String(length=16), nullable=True),
    sa.Column('answer_reason', sa.Text(), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['dispute_id'], ['disputes.id'], name=op.f('fk_dispute_reports_dispute_id_disputes')),
    sa.ForeignKeyConstraint(['reporter_id'], ['members.id'], name=op.f('fk_dispute_reports_reporter_id_members')),
    sa.PrimaryKeyConstraint('dispute_id', 'report_id', name=op.f('pk_dispute_reports'))
    )
    with op.batch_alter_table('dispute_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispute_reports_reporter_id'), ['reporter_id'], unique=False)

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('entry_hash', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_audit_events_entry_hash'), ['entry_hash'], unique=False)

    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suspended_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('suspended_at')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_entry_hash'))
        batch_op.drop_column('entry_hash')
        batch_op.drop_column('prev_hash')

    with op.batch_alter_table('dispute_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispute_reports_reporter_id'))

    op.drop_table('dispute_reports')
    op.drop_table('member_quotas')
    with op.batch_alter_table('lookup_hits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lookup_hits_member_id'))
        batch_op.drop_index(batch_op.f('ix_lookup_hits_at'))

    op.drop_table('lookup_hits')
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disputes_token_hash'))
        batch_op.drop_index(batch_op.f('ix_disputes_status'))
        batch_op.drop_index(batch_op.f('ix_disputes_opened_by'))

    op.drop_table('disputes')
    op.drop_table('daily_usage')
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_checkpoints_event_id'))

    op.drop_table('audit_checkpoints')
    op.drop_table('staff_users')
    op.drop_table('council_settings')
    op.drop_table('audit_head')
