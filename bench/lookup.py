"""Look-up and registration throughput of CLUE on gunicorn + PostgreSQL (`make bench`).

What it does, end to end and for real:

1. drops and recreates its own PostgreSQL database (default ``clue_bench``), runs the
   migrations, makes server keys in a temporary directory and admits a reporting member
   and ``--lookup-members`` looking members (default 1), their daily quotas lifted;
2. starts gunicorn (``--workers``, default 2) with ``clue_server.devserver.Gunicorn``;
3. **register**: seeds ``--tokens`` identifiers (default 100,000: phone numbers, e-mail
   addresses, IPv4 and IPv6 addresses) through the API with ``register_many``, 1,000 per
   request, from ``--concurrency`` client threads;
4. **lookup 1/request** and **lookup 100/request**: each for ``--seconds`` (after a short
   unmeasured warm-up), alternating in ~2 s slices with **ping** (a trivial signed
   endpoint) for as long again, so each look-up figure has a ping figure taken under the
   same conditions beside it. Half of the identifiers looked up were registered (written
   differently from how they were registered), half are unknown.

Every client thread has its own ``ClueClient`` (own keep-alive ``requests.Session``), and
every latency is measured around the client call: it includes the client's own
canonicalisation, tokenisation, request signing and response verification, exactly what
a member's integration pays. The load generator shares the machine with gunicorn and
PostgreSQL, so the CPU each of them used is printed beside the figures.

    .venv/bin/python bench/lookup.py [--seconds 10] [--concurrency 4] [--workers 2]
                                     [--tokens 100000] [--lookup-members 1]
                                     [--json PATH] [--redis-url URL] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import keys  # noqa: E402
from clue_client import canonical, tokens  # noqa: E402
from clue_client.client import CATEGORIES, MAX_BATCH, ClueClient  # noqa: E402
from clue_client.models import ReportInput  # noqa: E402
from clue_client.protocol import server_key_id  # noqa: E402
from clue_server import create_app  # noqa: E402
from clue_server.db import session_scope  # noqa: E402
from clue_server.devserver import Gunicorn  # noqa: E402
from clue_server.keystore import ensure_server_keys, load_server_keys  # noqa: E402
from clue_server.members.services import add_member  # noqa: E402
from clue_server.migrate import upgrade  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/clue_bench"
BATCH_LOOKUP = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")

# -- identifiers -----------------------------------------------------------------------

_FIRST = ("taro", "hanako", "yuki", "kenji", "aiko", "sora", "ren", "mei", "daichi", "nana")
_DOMAINS = ("gmail.com", "yahoo.co.jp", "docomo.ne.jp", "icloud.com", "outlook.jp",
            "ezweb.ne.jp", "softbank.ne.jp", "example.co.jp")


def identifier(i: int) -> tuple[str, str]:
    """The i-th synthetic identifier, as a member would have it (distinct for distinct i).

    Half phone numbers, 30 % e-mail addresses, 20 % IP addresses (IPv4 and IPv6).
    """
    kind = i % 10
    if kind < 5:  # 080 mobile numbers: every 8-digit subscriber part is valid
        n = (i * 7919) % 10**8
        return "phone", f"080-{n // 10**4:04d}-{n % 10**4:04d}"
    if kind < 8:
        name = _FIRST[i % len(_FIRST)]
        tag = "+shop" if i % 7 == 0 else ""
        return "email", f"{name}.{i:07d}{tag}@{_DOMAINS[(i // 10) % len(_DOMAINS)]}"
    if kind == 8:
        return "ip", f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    return "ip", f"2001:db8:{(i >> 16) & 0xffff:x}:{i & 0xffff:x}::{i % 97 + 1:x}"


def written_differently(id_type: str, value: str) -> str:
    """The same identifier as another member might type it (same canonical form)."""
    if id_type == "phone":
        _, a, b = value.split("-")
        return f"+81 80 {a} {b}"
    if id_type == "email":
        return value.upper()
    if ":" in value:
        return value.upper()
    return f" {value} "


def lookup_pool(tokens_registered: int, size: int, seed: int) -> list[tuple[str, str, bool]]:
    """``size`` identifiers to look up: half registered (written differently), half not."""
    rng = random.Random(seed)
    pool = []
    for k in range(size):
        if k % 2 == 0 and tokens_registered:
            id_type, value = identifier(rng.randrange(tokens_registered))
            pool.append((id_type, written_differently(id_type, value), True))
        else:
            pool.append((*identifier(tokens_registered + rng.randrange(10**7)), False))
    return pool


# -- CPU accounting (Linux /proc; zeros elsewhere) -------------------------------------

def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            pass
    return found


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores, not idle nor waiting on I/O)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


class CpuMeter:
    """CPU seconds used by this process, the gunicorn master+workers, PostgreSQL, and
    everything else on the machine (other work running at the same time skews figures)."""

    def __init__(self, gunicorn_pid: int) -> None:
        self.gunicorn_pid = gunicorn_pid

    def sample(self) -> dict[str, float]:
        server = [self.gunicorn_pid, *_children(self.gunicorn_pid)]
        used = {"client": time.process_time(),
                "gunicorn": sum(_proc_cpu(p) for p in server),
                "postgres": sum(_proc_cpu(p) for p in _postgres_pids())}
        return {**used, "other": _machine_busy() - sum(used.values())}


# -- running a phase ---------------------------------------------------------------------

@dataclass
class Phase:
    name: str
    ids_per_request: int
    requests: int = 0
    identifiers: int = 0
    errors: int = 0
    first_error: str | None = None
    wrong_answers: int = 0
    seconds: float = 0.0
    requests_per_s: float = 0.0
    identifiers_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    ping_requests_per_s: float | None = None
    ratio_vs_ping: float | None = None
    cpu_percent_of_one_core: dict[str, float] = field(default_factory=dict)
    server_cpu_ms_per_request: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    cpu_seconds: dict[str, float] = field(default_factory=dict, repr=False)


# work(client, thread_index, rng) -> (identifiers sent, wrong answers), or None when done
Work = Callable[[ClueClient, int, random.Random], "tuple[int, int] | None"]


def measure(phase: Phase, clients: list[ClueClient], work: Work, meter: CpuMeter, *,
            seconds: float | None) -> None:
    """Drive ``work`` for ``seconds`` (or until it is done) and add what happened to ``phase``;
    a phase may be measured in several slices."""
    before = meter.sample()
    start = time.perf_counter()
    _drive(clients, work, seconds=seconds, record=(phase, phase.latencies))
    phase.seconds += time.perf_counter() - start
    after = meter.sample()
    for k in after:
        phase.cpu_seconds[k] = phase.cpu_seconds.get(k, 0.0) + after[k] - before[k]


def merge(into: Phase, other: Phase) -> None:
    into.requests += other.requests
    into.identifiers += other.identifiers
    into.errors += other.errors
    into.first_error = into.first_error or other.first_error
    into.wrong_answers += other.wrong_answers
    into.seconds += other.seconds
    into.latencies += other.latencies
    for k, v in other.cpu_seconds.items():
        into.cpu_seconds[k] = into.cpu_seconds.get(k, 0.0) + v


def finish(phase: Phase, ping: Phase | None = None) -> Phase:
    """Turn the counts into rates and percentiles; ``ping`` is the baseline to compare to."""
    ordered = sorted(phase.latencies)
    if ordered:
        phase.p50_ms = round(1000 * _percentile(ordered, 50), 2)
        phase.p99_ms = round(1000 * _percentile(ordered, 99), 2)
    if phase.seconds:
        phase.requests_per_s = round(phase.requests / phase.seconds, 1)
        phase.identifiers_per_s = round(phase.identifiers / phase.seconds, 1)
        phase.cpu_percent_of_one_core = {
            k: round(100 * v / phase.seconds, 1) for k, v in phase.cpu_seconds.items()}
    if phase.requests:
        server = phase.cpu_seconds.get("gunicorn", 0.0) + phase.cpu_seconds.get("postgres", 0.0)
        phase.server_cpu_ms_per_request = round(1000 * server / phase.requests, 2)
    if ping is not None and ping.seconds and ping.requests:
        phase.ping_requests_per_s = round(ping.requests / ping.seconds, 1)
        phase.ratio_vs_ping = round(phase.requests_per_s / phase.ping_requests_per_s, 3)
    return phase


def as_json(phase: Phase) -> dict[str, Any]:
    data = asdict(phase)
    for internal in ("latencies", "cpu_seconds"):
        data.pop(internal)
    return data


def _percentile(ordered: list[float], pct: float) -> float:
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _drive(clients: list[ClueClient], work: Work, *, seconds: float | None,
           record: tuple[Phase, list[float]] | None) -> None:
    lock = threading.Lock()
    barrier = threading.Barrier(len(clients) + 1)
    deadline: list[float] = [0.0]

    def loop(index: int) -> None:
        rng = random.Random(index * 7 + 1)
        client = clients[index]
        barrier.wait()
        while seconds is None or time.perf_counter() < deadline[0]:
            t0 = time.perf_counter()
            try:
                outcome = work(client, index, rng)
            except Exception as exc:  # keep going: errors are counted and shown
                if record is not None:
                    with lock:
                        record[0].errors += 1
                        record[0].first_error = record[0].first_error or repr(exc)[:300]
                continue
            elapsed = time.perf_counter() - t0
            if outcome is None:
                return
            if record is not None:
                with lock:
                    record[0].requests += 1
                    record[0].identifiers += outcome[0]
                    record[0].wrong_answers += outcome[1]
                    record[1].append(elapsed)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True)
               for i in range(len(clients))]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + (seconds or 0)
    barrier.wait()
    for thread in threads:
        thread.join()


# -- the phases ----------------------------------------------------------------------------

def seed_work(total: int) -> Work:
    """register_many in batches of MAX_BATCH until ``total`` identifiers are in."""
    lock = threading.Lock()
    batches = iter(range(0, total, MAX_BATCH))

    def work(client: ClueClient, _index: int, _rng: random.Random) -> tuple[int, int] | None:
        with lock:
            start = next(batches, None)
        if start is None:
            return None
        items = [ReportInput(*identifier(i), CATEGORIES[i % len(CATEGORIES)])
                 for i in range(start, min(total, start + MAX_BATCH))]
        created = client.register_many(items)
        return len(items), sum(1 for r in created if not r.created)

    return work


def ping_work(client: ClueClient, _index: int, _rng: random.Random) -> tuple[int, int]:
    client.ping()
    return 0, 0


def lookup_work(pool: list[tuple[str, str, bool]], per_request: int) -> Work:
    def work(client: ClueClient, _index: int, rng: random.Random) -> tuple[int, int]:
        start = rng.randrange(len(pool) - per_request)
        chosen = pool[start:start + per_request]
        results = client.lookup_many([(t, v) for t, v, _ in chosen])
        wrong = sum(1 for r, (_, _, hit) in zip(results, chosen, strict=True)
                    if r.matched != hit)
        return len(chosen), wrong

    return work


def client_side_cost(network: keys.Keyring, n: int = 3000) -> dict[str, float]:
    """Microseconds to canonicalise + tokenise one identifier, per type (one thread)."""
    key = network.current.secret
    by_type: dict[str, list[str]] = {}
    for i in range(n * 4):
        id_type, value = identifier(i)
        by_type.setdefault(id_type, []).append(value)
    cost = {}
    for id_type, values in by_type.items():
        values = values[:n]
        t0 = time.perf_counter()
        for value in values:
            canon = canonical.canonicalize(id_type, value)
            tokens.encode_token(tokens.derive_token(key, id_type, canon))
            if id_type == "email":
                tokens.derive_token(key, id_type, canonical.email_folded(canon))
        cost[id_type] = round(1e6 * (time.perf_counter() - t0) / len(values), 1)
    return cost


# -- setup -----------------------------------------------------------------------------------

def recreate_database(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit("the benchmark needs PostgreSQL (a postgresql+psycopg:// URL)")
    name = parsed.database or ""
    if "bench" not in name:
        raise SystemExit(f"refusing to drop database {name!r}: the benchmark drops and "
                         "recreates its database, so its name must contain 'bench'")
    admin = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
        version = conn.execute("SHOW server_version").fetchone()
    return str(version[0]) if version else "?"


def analyze(url: str) -> None:
    """Refresh the planner's statistics after the bulk load, as autovacuum soon would.

    Without it the planner, still believing the table small, may scan every live row
    through ix_reports_expires_at instead of probing ix_reports_token_hash.
    """
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")


def drop_database(url: str) -> None:
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


@dataclass
class Setup:
    env: dict[str, str]
    members: dict[str, Any]  # name -> signing key
    network: keys.Keyring


def looker_names(count: int) -> list[str]:
    return ["Bench Looker"] if count == 1 else [f"Bench Looker {i + 1}" for i in range(count)]


def prepare(url: str, root: Path, lookup_members: int) -> Setup:
    keys_dir = root / "server-keys"
    ensure_server_keys(keys_dir)
    upgrade(url)
    app = create_app({"database_url": url, "server_keys_dir": keys_dir})
    members = {}
    with session_scope(app) as session:
        for name in ("Bench Reporter", *looker_names(lookup_members)):
            signing = keys.generate_signing_key()
            member = add_member(session, name, signing.public_key(), actor="bench")
            _lift_quotas(session, member.id)
            members[name] = signing
    app.extensions["clue_engine"].dispose()
    env = {"CLUE_DATABASE_URL": url, "CLUE_SERVER_KEYS_DIR": str(keys_dir)}
    return Setup(env=env, members=members,
                 network=keys.Keyring([keys.new_symmetric_key("network", 1)]))


def _lift_quotas(session: Any, member_id: str) -> None:
    """The daily quotas (50,000 registrations by default) would stop the seeding: lift them
    for the bench members. Their counting still runs on every request, as in production."""
    try:
        from clue_server.quotas import services as quotas
    except ImportError:  # a server without quotas
        return
    quotas.set_member_quota(session, member_id, quotas.MAX_QUOTA, quotas.MAX_QUOTA,
                            actor="bench")


def make_clients(server_url: str, setup: Setup, members: list[str],
                 count: int) -> list[ClueClient]:
    """``count`` clients, each with its own session, spread over ``members`` in turn."""
    server_keys = load_server_keys(Path(setup.env["CLUE_SERVER_KEYS_DIR"]))
    return [ClueClient(server_url, signing_key=setup.members[members[i % len(members)]],
                       server_public_key=server_keys.public_key,
                       server_key_id=server_key_id(server_keys.public_key),
                       network_keys=setup.network, timeout=60.0, retries=0,
                       session=requests.Session())
            for i in range(count)]


# -- output ------------------------------------------------------------------------------------

def print_table(phases: list[Phase]) -> None:
    header = (f"{'phase':<24}{'requests':>9}{'req/s':>9}{'ids/s':>10}{'p50 ms':>9}"
              f"{'p99 ms':>9}{'ping req/s':>12}{'vs ping':>9}{'errors':>8}")
    print(header)
    print("-" * len(header))
    for p in phases:
        ping = f"{p.ping_requests_per_s:.1f}" if p.ping_requests_per_s else "-"
        ratio = f"{p.ratio_vs_ping:.2f}x" if p.ratio_vs_ping is not None else "-"
        ids = f"{p.identifiers_per_s:.0f}" if p.ids_per_request else "-"
        print(f"{p.name:<24}{p.requests:>9}{p.requests_per_s:>9.1f}{ids:>10}{p.p50_ms:>9.1f}"
              f"{p.p99_ms:>9.1f}{ping:>12}{ratio:>9}{p.errors:>8}")
    print()
    print("CPU used during each phase, % of one core "
          f"(the machine has {os.cpu_count()} cores = {100 * (os.cpu_count() or 1)}%):")
    for p in phases:
        cpu = p.cpu_percent_of_one_core
        print(f"  {p.name:<24} client {cpu.get('client', 0):>4.0f}%  gunicorn "
              f"{cpu.get('gunicorn', 0):>4.0f}%  postgres {cpu.get('postgres', 0):>4.0f}%  "
              f"other processes {max(0.0, cpu.get('other', 0)):>4.0f}%   server CPU/request "
              f"{p.server_cpu_ms_per_request:.1f} ms")
    print("  (server CPU/request = gunicorn + PostgreSQL CPU time per request: what the "
          "server side costs, whatever else runs)")
    busy = max(p.cpu_percent_of_one_core.get("other", 0) for p in phases)
    if busy > 25:
        print(f"! other processes used up to {busy:.0f}% of a core during the run: the figures "
              "are skewed low; rerun on a quiet machine")
    for p in phases:
        if p.errors:
            print(f"! {p.name}: {p.errors} errors, first: {p.first_error}")
        if p.wrong_answers:
            print(f"! {p.name}: {p.wrong_answers} wrong answers (match/no match or created)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("CLUE_BENCH_DATABASE_URL",
                                                                 DEFAULT_URL),
                        help="PostgreSQL database to DROP and recreate (name must contain "
                             f"'bench'; default {DEFAULT_URL})")
    parser.add_argument("--tokens", type=int, default=100_000,
                        help="identifiers to register before the look-ups (default 100000)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="measured duration of each timed phase (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="unmeasured warm-up before each timed phase (default 1)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="client threads, each with its own ClueClient (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--lookup-members", type=int, default=1,
                        help="members the look-up threads sign as, in turn (default 1: one "
                             "member's integration with --concurrency requests in flight)")
    parser.add_argument("--redis-url", default=None,
                        help="use Redis for the nonce store (default: the database)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database, keys and gunicorn log afterwards")
    args = parser.parse_args(argv)
    if args.tokens < 2 * BATCH_LOOKUP:
        parser.error(f"--tokens must be at least {2 * BATCH_LOOKUP}")

    pg_version = recreate_database(args.database_url)
    root = Path(tempfile.mkdtemp(prefix="clue-bench-"))
    machine = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(), "postgresql": pg_version,
        "gunicorn_workers": args.workers, "client_threads": args.concurrency,
        "lookup_members": args.lookup_members,
        "nonce_store": "redis" if args.redis_url else "database",
        "tokens": args.tokens, "seconds_per_phase": args.seconds,
    }
    print("CLUE benchmark: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    try:
        setup = prepare(args.database_url, root, args.lookup_members)
        if args.redis_url:
            setup.env["CLUE_REDIS_URL"] = args.redis_url
        cost = client_side_cost(setup.network)
        print("client-side canonicalise+tokenise, µs per identifier (one thread): "
              + ", ".join(f"{k} {v}" for k, v in cost.items()))
        log = root / "gunicorn.log"
        with Gunicorn(setup.env, workers=args.workers, log=log) as server:
            assert server.process is not None
            meter = CpuMeter(server.process.pid)
            reporters = make_clients(server.url, setup, ["Bench Reporter"], args.concurrency)
            lookers = make_clients(server.url, setup, looker_names(args.lookup_members),
                                   args.concurrency)
            for client in reporters + lookers:  # open the keep-alive connections
                client.ping()
            phases = _run(args, reporters, lookers, meter)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
            drop_database(args.database_url)
        else:
            print(f"kept {root} and the database {args.database_url}")
    print()
    print_table(phases)
    print("\nLatencies are per request, measured around the client call: they include the "
          "client's canonicalisation, tokenisation, signing and response verification.")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "client_cost_us": cost,
                                         "phases": [as_json(p) for p in phases]}, indent=2)
                             + "\n")
        print(f"figures written to {args.json}")
    return 1 if any(p.errors or p.wrong_answers for p in phases) else 0


def _run(args: argparse.Namespace, reporters: list[ClueClient], lookers: list[ClueClient],
         meter: CpuMeter) -> list[Phase]:
    def say(text: str) -> None:
        print(text, flush=True)

    say(f"register: seeding {args.tokens} identifiers, {MAX_BATCH} per request ...")
    register = Phase(f"register ({MAX_BATCH}/request)", MAX_BATCH)
    measure(register, reporters, seed_work(args.tokens), meter, seconds=None)
    say(f"  {register.identifiers / register.seconds:.0f} identifiers/s in "
        f"{register.seconds:.1f} s")
    analyze(args.database_url)
    say("ANALYZE done (the steady state autovacuum reaches a minute after a bulk load)")

    # Each look-up phase alternates with ping in slices of about 2 s, so that both see the
    # same background (other processes, autovacuum, WAL flushes) and the ratio holds.
    pool = lookup_pool(args.tokens, 20_000, seed=42)
    slices = max(1, round(args.seconds / 2))
    all_pings = Phase("ping", 0)
    looked_up = []
    for per_request in (1, BATCH_LOOKUP):
        phase = Phase(f"lookup ({per_request}/request)", per_request)
        ping = Phase("ping", 0)
        work = lookup_work(pool, per_request)
        say(f"lookup {per_request}/request and ping, alternating: 2 x {args.seconds:g} s ...")
        _drive(lookers, ping_work, seconds=args.warmup, record=None)
        _drive(lookers, work, seconds=args.warmup, record=None)
        for _ in range(slices):
            measure(ping, lookers, ping_work, meter, seconds=args.seconds / slices)
            measure(phase, lookers, work, meter, seconds=args.seconds / slices)
        finish(phase, ping)
        merge(all_pings, ping)
        say(f"  {phase.requests_per_s:.1f} requests/s, {phase.identifiers_per_s:.0f} "
            f"identifiers/s; ping {phase.ping_requests_per_s} requests/s")
        looked_up.append(phase)
    finish(all_pings, all_pings)
    finish(register, all_pings)
    return [register, all_pings, *looked_up]


if __name__ == "__main__":
    sys.exit(main())
