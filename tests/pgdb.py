"""Print a PostgreSQL URL for the tests when a server answers (creating the database).

Used by ``make test``: ``python -m tests.pgdb HOST PORT`` prints nothing when no
server answers, so the suite then runs on SQLite alone.
"""

from __future__ import annotations

import sys

import psycopg
from psycopg import sql

DATABASE = "clue_test"


def main(host: str = "127.0.0.1", port: str = "5432") -> int:
    try:
        with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres",
                             connect_timeout=2, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (DATABASE,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    except psycopg.Error:
        return 0
    print(f"postgresql+psycopg://postgres@{host}:{port}/{DATABASE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
