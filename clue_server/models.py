"""Every table, imported in one place (Alembic autogenerate and the tests use this)."""

from clue_server.audit.models import AuditCheckpoint, AuditEvent, AuditHead, AuditVerification
from clue_server.auth.models import IdempotencyRecord, SeenNonce
from clue_server.console.models import ConsoleSession, LoginFailure, StaffUser
from clue_server.db import Base
from clue_server.disputes.models import Dispute, DisputeReport
from clue_server.members.models import Member, MemberKey
from clue_server.networkkeys.models import NetworkKeyEnvelope, NetworkKeyVersion
from clue_server.private.models import Entry, EntryCursor
from clue_server.quotas.models import CouncilSetting, MemberQuota, QuotaUsage
from clue_server.reports.models import Report
from clue_server.stats.models import DailyUsage, UsageFlush

__all__ = [
    "AuditCheckpoint", "AuditEvent", "AuditHead", "AuditVerification", "Base",
    "ConsoleSession", "CouncilSetting", "DailyUsage", "Dispute", "DisputeReport", "Entry",
    "EntryCursor",
    "IdempotencyRecord", "LoginFailure", "Member", "MemberKey", "MemberQuota",
    "NetworkKeyEnvelope", "NetworkKeyVersion", "QuotaUsage", "Report", "SeenNonce",
    "StaffUser", "UsageFlush",
]
