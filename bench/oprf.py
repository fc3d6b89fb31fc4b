"""Micro-benchmark of private look-ups (issue 13): the CPU each side adds, and the replica.

No server, no database: it times the pure functions the v2 protocol is built from, on
one thread, and prints what a member and the server pay per identifier:

* **SDK, per identifier**: blind + finalize (RFC 9497 OPRF, libsodium ristretto255),
  entry id and key (HKDF), bucket prefix, and opening the entry's sealed answer. The
  v1 cost it adds to (canonical form + HMAC token) is printed beside it; the token is
  still computed in v2, so the *added* CPU is the first figure alone.
* **server, per identifier**: BlindEvaluate (a look-up's evaluation), Evaluate +
  HKDF + seal (a registration), and v1's per-item crypto (HMAC under the pepper) for
  scale. Request handling (signature check, JSON, database) is not included: it is
  the same machinery as v1's and is measured by bench/hotpath.py.
* **replica**: building a replica of ``--entries`` entries (default 10,000,000; ids and
  sealed answers random except ``--probes`` real ones), the memory it holds, and one
  look-up against it (id probe + opening the answer), for identifiers that are and
  are not in it; then matching a delta of 10,000 records against a watch list of
  1,000,000 customers.

    .venv/bin/python bench/oprf.py [--entries 10000000] [--seconds 2] [--json PATH]

The replica build needs about 2.5 GB of memory at 10 M entries (transiently, for the
sort) and about a minute on one core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keys
from clue_client import canonical, tokens
from clue_client.private_lookups import entries
from clue_client.private_lookups.entries import Answer, derive_entry, open_answer
from clue_client.private_lookups.idtable import IdTable
from clue_client.private_lookups.replica import Delta, Replica
from clue_client.private_lookups.watch import WatchList

NETWORK_KEY = bytes(range(32))
PREFIX_BITS = 18
ANSWER = Answer(("card_theft",), 2, dt.date(2025, 3, 1), dt.date(2025, 4, 1), False)


def per_call(fn: Callable[[], object], seconds: float) -> float:
    """Mean CPU microseconds per call of ``fn`` over about ``seconds`` (after a warm-up)."""
    for _ in range(20):
        fn()
    calls, start = 0, time.process_time()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn()
        calls += 50
        now = time.process_time()
        if now >= deadline:
            return (now - start) / calls * 1e6


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def sdk_and_server(seconds: float) -> dict[str, float]:
    server = keys.OprfKey.generate()
    token = tokens.derive_token(NETWORK_KEY, "phone", "+819012345678")
    stored = derive_entry(server.evaluate(token), "exact")
    sealed = entries.seal_answer(stored, 1, ANSWER)
    state = keys.oprf_blind(token)
    evaluated = server.blind_evaluate(state.blinded_element)

    def sdk_blind() -> None:
        keys.oprf_blind(token)

    def sdk_finalize_and_open() -> None:
        entry = derive_entry(keys.oprf_finalize(state, evaluated), "exact")
        entries.bucket_prefix(entry.entry_id, PREFIX_BITS)
        open_answer(entry, 1, sealed)

    email_token = tokens.derive_token(NETWORK_KEY, "email", "j.doe+shop@googlemail.com")
    folded_token = tokens.derive_token(NETWORK_KEY, "email", "jdoe@gmail.com")
    folded_state = keys.oprf_blind(folded_token)
    folded_evaluated = server.blind_evaluate(folded_state.blinded_element)
    _exact, email_folded = entries.derive_email_entries(server.evaluate(folded_token),
                                                        email_token)
    email_sealed = entries.seal_answer(email_folded, 1, ANSWER)

    def sdk_email() -> None:  # one evaluation (folded token), both entries, one open
        keys.oprf_blind(folded_token)
        output = keys.oprf_finalize(folded_state, folded_evaluated)
        _exact, folded = entries.derive_email_entries(output, email_token)
        entries.bucket_prefix(folded.entry_id, PREFIX_BITS)
        open_answer(folded, 1, email_sealed)

    batch = [tokens.derive_token(NETWORK_KEY, "phone", f"+8190{i:08d}") for i in range(100)]
    batch_states = keys.oprf_blind_batch(batch)
    batch_evaluated = server.blind_evaluate_batch([s.blinded_element for s in batch_states])

    def sdk_batch_100() -> None:
        keys.oprf_blind_batch(batch)
        for output in keys.oprf_finalize_batch(batch_states, batch_evaluated):
            derive_entry(output, "exact")

    def v1_client() -> None:
        tokens.derive_token(NETWORK_KEY, "phone", canonical.canonicalize("phone", "090-1234-5678"))

    pepper = os.urandom(32)

    def v1_server() -> None:
        import hashlib
        import hmac
        hmac.digest(pepper, token, hashlib.sha256)

    def server_registration() -> None:
        entry = derive_entry(server.evaluate(token), "exact")
        entries.seal_answer(entry, 1, ANSWER)

    figures = {
        "sdk_blind_us": per_call(sdk_blind, seconds),
        "sdk_finalize_derive_open_us": per_call(sdk_finalize_and_open, seconds),
        "sdk_email_us": per_call(sdk_email, seconds),
        "sdk_batch_per_identifier_us": per_call(sdk_batch_100, seconds) / 100,
        "v1_client_canonical_token_us": per_call(v1_client, seconds),
        "server_blind_evaluate_us": per_call(lambda: server.blind_evaluate(state.blinded_element),
                                             seconds),
        "server_registration_evaluate_seal_us": per_call(server_registration, seconds),
        "v1_server_pepper_hmac_us": per_call(v1_server, seconds),
    }
    figures["sdk_added_per_identifier_us"] = (figures["sdk_blind_us"]
                                             + figures["sdk_finalize_derive_open_us"])
    return figures


def replica_figures(count: int, probes: int, seconds: float) -> dict[str, float]:
    known = [derive_entry(os.urandom(64), "exact") for _ in range(probes)]
    unknown = [derive_entry(os.urandom(64), "exact") for _ in range(probes)]
    known_sealed = [entries.seal_answer(e, 1, ANSWER) for e in known]
    filler = count - probes
    gc.collect()
    before = current_rss_mb()
    start = time.perf_counter()
    ids, values = os.urandom(16 * filler), os.urandom(38 * filler)

    def all_records(ids: bytes, values: bytes) -> Any:
        for i in range(filler):
            yield ids[i * 16:(i + 1) * 16], values[i * 38:(i + 1) * 38]
        yield from ((e.entry_id, s) for e, s in zip(known, known_sealed, strict=True))

    table = IdTable.build(all_records(ids, values), entries.SEALED_BYTES)
    del ids, values
    replica = Replica(oprf_version=1)
    replica._base = table  # as if applied from one snapshot delta (same IdTable.build)
    replica.cursor, replica.issued_at = count, int(time.time())
    build_seconds = time.perf_counter() - start
    gc.collect()
    held = current_rss_mb() - before

    position = [0]

    def hit() -> None:
        i = position[0] = (position[0] + 1) % probes
        assert replica.lookup(known[i]) is not None

    def miss() -> None:
        i = position[0] = (position[0] + 1) % probes
        assert replica.lookup(unknown[i]) is None

    figures = {
        "replica_entries": float(count),
        "replica_build_s": build_seconds,
        "replica_table_mb": table.nbytes / 2**20,
        "replica_rss_growth_mb": held,
        "replica_lookup_hit_us": per_call(hit, seconds),
        "replica_lookup_miss_us": per_call(miss, seconds),
    }
    # clue watch: a delta of 10,000 records (100 of them watched) against 1 M customers.
    watched = [derive_entry(os.urandom(64), "exact") for _ in range(1_000_000)]
    watch = WatchList.build(((e, f"acct-{i}", "phone", "exact") for i, e in enumerate(watched)),
                            oprf_version=1)
    puts = [(e.entry_id, entries.seal_answer(e, 1, ANSWER)) for e in watched[:100]]
    puts += [(os.urandom(16), os.urandom(38)) for _ in range(9_900)]
    delta = Delta(1, count, count + 10_000, int(time.time()), False, tuple(puts), ())
    start = time.process_time()
    alerts = watch.match(delta)
    figures["watch_delta_per_record_us"] = (time.process_time() - start) / 10_000 * 1e6
    assert len(alerts) == 100
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor()
                    or platform.machine(), "cores": os.cpu_count()},
    }
    figures.update(sdk_and_server(args.seconds))
    figures.update(replica_figures(args.entries, args.probes, args.seconds))
    figures["peak_rss_mb"] = rss_mb()
    rows = [
        ("SDK added CPU per identifier (blind + finalize + HKDF + open)",
         figures["sdk_added_per_identifier_us"], "target < 300 µs"),
        ("  of which blind", figures["sdk_blind_us"], ""),
        ("  of which finalize + entry id/key + prefix + open",
         figures["sdk_finalize_derive_open_us"], ""),
        ("SDK, one e-mail (one evaluation, both entries, one open)", figures["sdk_email_us"],
         "target < 300 µs"),
        ("SDK, per identifier in a batch of 100 (blind + finalize + HKDF)",
         figures["sdk_batch_per_identifier_us"], ""),
        ("v1 SDK canonical form + token (still paid in v2)",
         figures["v1_client_canonical_token_us"], ""),
        ("server BlindEvaluate per identifier", figures["server_blind_evaluate_us"], ""),
        ("server registration: Evaluate + HKDF + seal",
         figures["server_registration_evaluate_seal_us"], ""),
        ("v1 server HMAC(pepper, token) per identifier", figures["v1_server_pepper_hmac_us"], ""),
        (f"replica look-up, hit ({args.entries:,} entries)", figures["replica_lookup_hit_us"],
         "target < 50 µs"),
        (f"replica look-up, miss ({args.entries:,} entries)", figures["replica_lookup_miss_us"],
         ""),
        ("watch: per delta record, 1 M watched", figures["watch_delta_per_record_us"], ""),
    ]
    print(f"\nCLUE private look-ups, micro-benchmark (one thread, CPU time) - {figures['machine']}")
    for label, value, note in rows:
        print(f"  {label:<66} {value:9.1f} µs  {note}")
    print(f"  replica build: {figures['replica_build_s']:.1f} s; table "
          f"{figures['replica_table_mb']:.0f} MB; RSS growth "
          f"{figures['replica_rss_growth_mb']:.0f} MB; peak RSS {figures['peak_rss_mb']:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
