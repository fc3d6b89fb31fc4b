"""bind each network-key version to its custodian

Revision ID: 0006
Revises: 0005

A version's custodian is the member whose upload created it; only that member may
upload envelopes for it from now on. Existing versions take the member that signed
their oldest remaining envelope (an overwrite by another member replaced rows, so the
oldest row is the creator's). Envelopes that other members signed stay, and the SDK
refuses them (``keyshare.fetch``) until the custodian shares again.
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


FK_NAME = 'fk_network_key_versions_custodian_id_members'


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # Not batch mode: recreating network_key_versions would drop a table that
        # network_key_envelopes rows reference, which SQLite refuses (foreign keys are on).
        # SQLite adds a NULL column with an inline REFERENCES in place.
        op.execute(f"ALTER TABLE network_key_versions ADD COLUMN custodian_id VARCHAR(32) "
                   f"CONSTRAINT {FK_NAME} REFERENCES members (id)")
    else:
        op.add_column('network_key_versions',
                      sa.Column('custodian_id', sa.String(length=32), nullable=True))
        op.create_foreign_key(FK_NAME, 'network_key_versions', 'members',
                              ['custodian_id'], ['id'])
    op.execute(
        "UPDATE network_key_versions SET custodian_id = ("
        " SELECT member_keys.member_id FROM network_key_envelopes"
        " JOIN member_keys ON member_keys.id = network_key_envelopes.sender_key_id"
        " WHERE network_key_envelopes.version = network_key_versions.version"
        " ORDER BY network_key_envelopes.created_at, network_key_envelopes.id LIMIT 1)")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("ALTER TABLE network_key_versions DROP COLUMN custodian_id")  # SQLite 3.35+
    else:
        op.drop_constraint(FK_NAME, 'network_key_versions', type_='foreignkey')
        op.drop_column('network_key_versions', 'custodian_id')
