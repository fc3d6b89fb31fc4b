"""console: server-side sessions, sign-in throttling, stored audit verifications

Console sessions move from the signed cookie to ``console_sessions`` so that signing out
and removing a staff user end them on the server. Lockout state is derived from
``console_login_failures`` (per address, per address and username, per username), so the
``failed_logins`` and ``locked_until`` columns go. ``audit_verifications`` keeps the result
of each ``verify_chain`` run; ``audit_events`` gets indexes for the console's filters.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('staff_user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_users.id'], name=op.f('fk_console_sessions_staff_user_id_staff_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_staff_user_id'), ['staff_user_id'], unique=False)

    op.create_table('console_login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_login_failures'))
    )
    with op.batch_alter_table('console_login_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_login_failures_address'), ['address'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_login_failures_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_login_failures_username'), ['username'], unique=False)

    op.create_table('audit_verifications',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('by', sa.String(length=64), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.Column('checkpoints', sa.Integer(), nullable=False),
    sa.Column('last_event_id', sa.Integer(), nullable=True),
    sa.Column('first_broken_id', sa.Integer(), nullable=True),
    sa.Column('problem', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_verifications'))
    )
    with op.batch_alter_table('audit_verifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_verifications_at'), ['at'], unique=False)

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_actor'), ['actor'], unique=False)

    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.drop_column('locked_until')
        batch_op.drop_column('failed_logins')


def downgrade() -> None:
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_logins', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_actor'))
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))

    with op.batch_alter_table('audit_verifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_verifications_at'))
    op.drop_table('audit_verifications')

    with op.batch_alter_table('console_login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_login_failures_username'))
        batch_op.drop_index(batch_op.f('ix_console_login_failures_at'))
        batch_op.drop_index(batch_op.f('ix_console_login_failures_address'))
    op.drop_table('console_login_failures')

    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_staff_user_id'))
    op.drop_table('console_sessions')
