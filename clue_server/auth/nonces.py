"""Replay protection: each request nonce is accepted once per signing key.

With ``CLUE_REDIS_URL`` the seen set lives in Redis (``SET NX EX``), shared by
every worker and app server; otherwise in the database, where a primary key
makes the second insert fail in any worker.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from clue_client.protocol import MAX_FUTURE_SKEW, MAX_SIGNATURE_AGE
from clue_server.auth.models import SeenNonce
from clue_server.db import utcnow

#: A nonce must be remembered as long as its signature could still be accepted.
NONCE_TTL = dt.timedelta(seconds=MAX_SIGNATURE_AGE + MAX_FUTURE_SKEW + 5)


class NonceStore(Protocol):
    def claim(self, key_id: str, nonce: str) -> bool:
        """Record the nonce; False when it was already seen."""


class RedisNonceStore:
    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url)

    def claim(self, key_id: str, nonce: str) -> bool:
        ttl = int(NONCE_TTL.total_seconds())
        return bool(self.redis.set(f"clue:nonce:{key_id}:{nonce}", b"1", nx=True, ex=ttl))


class DatabaseNonceStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def claim(self, key_id: str, nonce: str) -> bool:
        now = utcnow()
        with self.sessions() as session:
            session.add(SeenNonce(key=f"{key_id}:{nonce}", expires_at=now + NONCE_TTL))
            try:
                session.commit()
            except IntegrityError:
                return False
            # Sweep now and then rather than on every request.
            if random.random() < 0.01:  # noqa: S311 - not security relevant
                session.execute(delete(SeenNonce).where(SeenNonce.expires_at < now))
                session.commit()
        return True
