"""network key distribution

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('network_key_versions',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_network_key_versions'))
    )
    op.create_table('network_key_envelopes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('recipient_id', sa.String(length=32), nullable=False),
    sa.Column('sender_key_id', sa.String(length=64), nullable=False),
    sa.Column('envelope', sa.LargeBinary(), nullable=False),
    sa.Column('signature', sa.LargeBinary(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['recipient_id'], ['members.id'], name=op.f('fk_network_key_envelopes_recipient_id_members')),
    sa.ForeignKeyConstraint(['sender_key_id'], ['member_keys.id'], name=op.f('fk_network_key_envelopes_sender_key_id_member_keys')),
    sa.ForeignKeyConstraint(['version'], ['network_key_versions.version'], name=op.f('fk_network_key_envelopes_version_network_key_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_network_key_envelopes')),
    sa.UniqueConstraint('version', 'recipient_id', name='uq_network_key_envelopes_version_recipient')
    )
    with op.batch_alter_table('network_key_envelopes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_network_key_envelopes_recipient_id'), ['recipient_id'], unique=False)

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hpke_public_key', sa.LargeBinary(length=32), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('hpke_public_key')

    with op.batch_alter_table('network_key_envelopes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_network_key_envelopes_recipient_id'))

    op.drop_table('network_key_envelopes')
    op.drop_table('network_key_versions')
