"""Council-wide settings changed at run time (console or CLI), over the environment's defaults.

Stored in ``council_settings``; every change is audited by the caller.

Keys: ``retention_days.<type>`` (maximum days a report of that type may live),
``quota.daily_lookups`` and ``quota.daily_registrations`` (per-member defaults),
``dispute.deadline_days``; for private look-ups (docs/private-lookups.md)
``private.prefix_bits`` (bucket prefix length) and ``private.lookup_protocol`` (which
protocol the SDK's look-ups use: 1 until the council declares the move to v2 done).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clue_server.config import ID_TYPES, Settings
from clue_server.quotas.models import CouncilSetting

DEFAULT_DAILY_LOOKUPS = 200_000
DEFAULT_DAILY_REGISTRATIONS = 50_000
DEFAULT_DISPUTE_DEADLINE_DAYS = 14
MAX_DISPUTE_DEADLINE_DAYS = 365
DEFAULT_PREFIX_BITS = 16
#: Fewer than 12 bits makes buckets of more than 1/4,096 of the register (large
#: answers); more than 20 leaves fewer than ~300 phone numbers per bucket.
PREFIX_BITS_RANGE = (12, 20)
KNOWN_KEYS = frozenset({*(f"retention_days.{t}" for t in ID_TYPES), "quota.daily_lookups",
                        "quota.daily_registrations", "dispute.deadline_days",
                        "private.prefix_bits", "private.lookup_protocol",
                        "private.tombstone_horizon", "private.v1_lookups"})


class SettingError(ValueError):
    """An unknown setting or a value out of range."""


def all_settings(session: Session) -> dict[str, Any]:
    return {row.key: row.value for row in session.scalars(select(CouncilSetting))}


def get_int(session: Session, key: str, default: int) -> int:
    row = session.get(CouncilSetting, key)
    return int(row.value) if row is not None and isinstance(row.value, int) else default


def set_int(session: Session, key: str, value: int, *, minimum: int = 1,
            maximum: int = 10**9) -> None:
    if key not in KNOWN_KEYS:
        raise SettingError(f"unknown setting {key!r}")
    if type(value) is not int or not minimum <= value <= maximum:
        raise SettingError(f"{key} must be a whole number from {minimum} to {maximum}")
    row = session.get(CouncilSetting, key)
    if row is None:
        session.add(CouncilSetting(key=key, value=value))
    else:
        row.value = value


def retention_days(session: Session, settings: Settings) -> dict[str, int]:
    """The council maximum per type: the console's value, else the environment's."""
    stored = all_settings(session)
    return {t: int(stored.get(f"retention_days.{t}", settings.max_retention_days[t]))
            for t in ID_TYPES}


def quota_defaults(session: Session) -> tuple[int, int]:
    return (get_int(session, "quota.daily_lookups", DEFAULT_DAILY_LOOKUPS),
            get_int(session, "quota.daily_registrations", DEFAULT_DAILY_REGISTRATIONS))


def dispute_deadline_days(session: Session) -> int:
    return get_int(session, "dispute.deadline_days", DEFAULT_DISPUTE_DEADLINE_DAYS)


def set_dispute_deadline_days(session: Session, days: int, *, actor: str) -> int:
    """Set ``dispute.deadline_days`` (for disputes filed from now on). Audited; returns
    the previous value."""
    from clue_server.audit import services as audit

    previous = dispute_deadline_days(session)
    set_int(session, "dispute.deadline_days", days, maximum=MAX_DISPUTE_DEADLINE_DAYS)
    audit.record(session, actor=actor, action="dispute.deadline_set", subject="council",
                 days=days, previous=previous)
    return previous


def private_lookups(session: Session) -> tuple[int, int]:
    """(``prefix_bits``, ``lookup_protocol``). A database made by ``create_all`` rather
    than the migrations has no ``lookup_protocol`` row: nothing to migrate, so 2."""
    return (get_int(session, "private.prefix_bits", DEFAULT_PREFIX_BITS),
            get_int(session, "private.lookup_protocol", 2))


def v1_lookups_retired(session: Session) -> bool:
    """Whether the council retired protocol-1 look-ups (``private.v1_lookups`` 0)."""
    return get_int(session, "private.v1_lookups", 1) == 0


def retire_v1_lookups(session: Session, *, actor: str, retired: bool = True) -> bool:
    """Retire (or reopen) protocol-1 look-ups, audited; the previous state. Retiring
    needs ``lookup_protocol`` 2 first: the SDKs must already look up privately."""
    from clue_server.audit import services as audit

    previous = v1_lookups_retired(session)
    if retired and private_lookups(session)[1] != 2:
        raise SettingError("set lookup_protocol to 2 first: SDKs that follow the council "
                           "would still ask by protocol 1")
    set_int(session, "private.v1_lookups", 0 if retired else 1, minimum=0, maximum=1)
    audit.record(session, actor=actor, action="private.v1_lookups_set", subject="council",
                 retired=retired, previous_retired=previous)
    return previous


def set_private_lookups(session: Session, *, actor: str, prefix_bits: int | None = None,
                        lookup_protocol: int | None = None) -> tuple[int, int]:
    """Change either setting (audited); returns the previous pair."""
    from clue_server.audit import services as audit

    previous = private_lookups(session)
    if prefix_bits is not None:
        set_int(session, "private.prefix_bits", prefix_bits, minimum=PREFIX_BITS_RANGE[0],
                maximum=PREFIX_BITS_RANGE[1])
    if lookup_protocol is not None:
        if lookup_protocol == 1 and v1_lookups_retired(session):
            raise SettingError("protocol-1 look-ups are retired: reopen them first "
                               "(--v1-lookups open)")
        set_int(session, "private.lookup_protocol", lookup_protocol, minimum=1, maximum=2)
    audit.record(session, actor=actor, action="private.settings_set", subject="council",
                 prefix_bits=prefix_bits, lookup_protocol=lookup_protocol,
                 previous_prefix_bits=previous[0], previous_lookup_protocol=previous[1])
    return previous
