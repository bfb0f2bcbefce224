"""ScribeDB from Python, against LMDB (the `lmdb` package) and SQLite (the
standard library's `sqlite3`, WAL mode), in one run.

    python bench.py                 # 1,000,000 keys (a few minutes)
    python bench.py --quick         # 20,000 keys, short windows (well under a minute)
    python bench.py --keys 200000 --out results.md

Every engine gets the same keys (17 bytes, "user:" and 12 digits, in a
random order from a fixed seed) and values (100 to 150 random bytes), and
the same Python loop shape: one call per get, put or scan. Each cell of
the table is the absolute figure and, in parentheses, the engine's cost
relative to ScribeDB's in the same row (time per operation, or the
inverse of a throughput): 2.00 means half as fast as ScribeDB, 0.50 twice
as fast.

Workloads, each on the databases as the rows above left them:

* random gets: single process, in one read transaction; and one read
  transaction per get (what a request handler does);
* range scans of 10 entries from a random existing key;
* batch writes (1,000 puts of random existing keys per transaction) and
  single-put commits, first durable (ScribeDB "immediate", LMDB's default
  sync, SQLite synchronous=FULL), then not synced at each commit (ScribeDB
  "eventual", LMDB sync=False, SQLite synchronous=NORMAL);
* multi-process: 1, 2 or 4 reader processes (read transactions of 10
  random gets) while one process makes durable single-put commits;
* commit-to-visible latency: a writer process stores CLOCK_MONOTONIC in
  the clock key and commits; a reader process takes the clock when it
  first sees the value, and the difference is the latency (so it includes
  the commit itself). Readers poll (a new read transaction per poll); for
  ScribeDB also with `db.wait_for_commit`;
* the binding's own cost: ns per call of `r.get` on a few hot keys, next
  to a no-op native call (`len(k)`) and a dict lookup (`d.get(k)`).

Needs `pip install lmdb` for the LMDB column (shown as n/a without it).
"""

import argparse
import itertools
import multiprocessing as mp
import os
import platform
import random
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import scribedb

try:
    import lmdb
except ImportError:
    lmdb = None

SEED = 20240611
MULT, ADD, SPACE = 2654435761, 12345, 10**12  # MULT is prime to SPACE: a bijection
CLOCK = b"clock:"  # and the run's name: each latency run has a clock key of its own
COLUMNS = ["scribedb", "lmdb", "sqlite"]


def key(i):
    """The i-th key of the data set: 17 bytes, in no particular order."""
    return b"user:%012d" % ((i * MULT + ADD) % SPACE)


def value_pool():
    rng = random.Random(SEED)
    return [rng.randbytes(rng.randint(100, 150)) for _ in range(1024)]


def random_keys(n_keys, count, seed):
    rng = random.Random(seed)
    return [key(rng.randrange(n_keys)) for _ in range(count)]


# --- the engines -------------------------------------------------------------
#
# Each adapter has the same methods; each method is the loop a user would
# write with that engine's API (group_reader: a function that reads a group
# of keys in one read transaction). "mode" is "durable" or "relaxed".


class Scribe:
    name = "scribedb"

    def __init__(self, root):
        self.path = Path(root) / "scribedb"
        self.db = None

    def open(self, mode="durable"):
        self.db = scribedb.open(
            self.path, durability="immediate" if mode == "durable" else "eventual"
        )

    def close(self):
        self.db.close()

    def load(self, items, batch):
        for start in range(0, len(items), batch):
            with self.db.write() as w:
                put = w.put
                for k, v in items[start : start + batch]:
                    put(k, v)

    def settle(self):
        self.db.compact()

    def gets(self, keys):
        missing = 0
        with self.db.read() as r:
            get = r.get
            for k in keys:
                if get(k) is None:
                    missing += 1
        return missing

    def gets_own_txn(self, keys):
        missing = 0
        read = self.db.read
        for k in keys:
            with read() as r:
                if r.get(k) is None:
                    missing += 1
        return missing

    def scans(self, starts, n=10):
        seen = 0
        with self.db.read() as r:
            for k in starts:
                for _ in itertools.islice(r.range(k), n):
                    seen += 1
        return seen

    def write_batch(self, pairs):
        with self.db.write() as w:
            put = w.put
            for k, v in pairs:
                put(k, v)

    def commit_one(self, k, v):
        with self.db.write() as w:
            w.put(k, v)

    def group_reader(self):
        read = self.db.read

        def read_group(group):
            with read() as r:
                get = r.get
                for k in group:
                    get(k)

        return read_group

    def poll(self, k):
        with self.db.read() as r:
            return r.get(k)


class Lmdb:
    name = "lmdb"

    def __init__(self, root):
        self.path = Path(root) / "lmdb"
        self.env = None

    def open(self, mode="durable"):
        self.path.mkdir(exist_ok=True)
        self.env = lmdb.open(str(self.path), map_size=1 << 36, sync=mode == "durable")

    def close(self):
        self.env.close()

    def load(self, items, batch):
        for start in range(0, len(items), batch):
            with self.env.begin(write=True) as txn:
                put = txn.put
                for k, v in items[start : start + batch]:
                    put(k, v)

    def settle(self):
        pass

    def gets(self, keys):
        missing = 0
        with self.env.begin() as txn:
            get = txn.get
            for k in keys:
                if get(k) is None:
                    missing += 1
        return missing

    def gets_own_txn(self, keys):
        missing = 0
        begin = self.env.begin
        for k in keys:
            with begin() as txn:
                if txn.get(k) is None:
                    missing += 1
        return missing

    def scans(self, starts, n=10):
        seen = 0
        with self.env.begin() as txn:
            cur = txn.cursor()
            for k in starts:
                if cur.set_range(k):
                    for _ in itertools.islice(cur.iternext(), n):
                        seen += 1
        return seen

    def write_batch(self, pairs):
        with self.env.begin(write=True) as txn:
            put = txn.put
            for k, v in pairs:
                put(k, v)

    def commit_one(self, k, v):
        with self.env.begin(write=True) as txn:
            txn.put(k, v)

    def group_reader(self):
        begin = self.env.begin

        def read_group(group):
            with begin() as txn:
                get = txn.get
                for k in group:
                    get(k)

        return read_group

    def poll(self, k):
        with self.env.begin() as txn:
            return txn.get(k)


class Sqlite:
    name = "sqlite"
    GET = "SELECT v FROM kv WHERE k = ?"
    SCAN = "SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?"
    PUT = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"

    def __init__(self, root):
        self.path = Path(root) / "sqlite.db"
        self.conn = None

    def open(self, mode="durable"):
        conn = sqlite3.connect(self.path, isolation_level=None)  # we BEGIN ourselves
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=" + ("FULL" if mode == "durable" else "NORMAL"))
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA cache_size=-1048576")  # up to 1 GiB of pages per connection
        conn.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
        self.conn = conn

    def close(self):
        self.conn.close()

    def load(self, items, batch):
        cur = self.conn.cursor()
        for start in range(0, len(items), batch):
            cur.execute("BEGIN IMMEDIATE")
            for k, v in items[start : start + batch]:
                cur.execute(self.PUT, (k, v))
            cur.execute("COMMIT")

    def settle(self):
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def gets(self, keys):
        missing = 0
        cur = self.conn.cursor()
        cur.execute("BEGIN")
        execute, sql = cur.execute, self.GET
        for k in keys:
            if execute(sql, (k,)).fetchone() is None:
                missing += 1
        cur.execute("COMMIT")
        return missing

    def gets_own_txn(self, keys):
        # In autocommit mode each SELECT is a read transaction of its own.
        missing = 0
        execute, sql = self.conn.cursor().execute, self.GET
        for k in keys:
            if execute(sql, (k,)).fetchone() is None:
                missing += 1
        return missing

    def scans(self, starts, n=10):
        seen = 0
        cur = self.conn.cursor()
        cur.execute("BEGIN")
        execute, sql = cur.execute, self.SCAN
        for k in starts:
            seen += len(execute(sql, (k, n)).fetchall())
        cur.execute("COMMIT")
        return seen

    def write_batch(self, pairs):
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        execute, sql = cur.execute, self.PUT
        for k, v in pairs:
            execute(sql, (k, v))
        cur.execute("COMMIT")

    def commit_one(self, k, v):
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        cur.execute(self.PUT, (k, v))
        cur.execute("COMMIT")

    def group_reader(self):
        execute, sql = self.conn.cursor().execute, self.GET

        def read_group(group):
            execute("BEGIN")
            for k in group:
                execute(sql, (k,)).fetchone()
            execute("COMMIT")

        return read_group

    def poll(self, k):
        row = self.conn.execute(self.GET, (k,)).fetchone()
        return None if row is None else row[0]


ENGINES = {"scribedb": Scribe, "lmdb": Lmdb, "sqlite": Sqlite}


def engine(name, root):
    return ENGINES[name](root)


# --- processes (spawned: each opens its own handle) ----------------------------


def reader_process(name, root, n_keys, n_random, seed, warmup, start, t_end, ready, out):
    e = engine(name, root)
    e.open()
    keys = random_keys(n_keys, n_random, seed)
    groups = [keys[i : i + 10] for i in range(0, len(keys), 10)]
    read_window(e.group_reader(), groups, time.monotonic() + warmup)
    ready.put(os.getpid())
    if not start.wait(600):
        return  # the parent is gone
    began = time.monotonic()
    gets = read_window(e.group_reader(), groups, t_end.value)
    out.put(("reader", gets / (time.monotonic() - began)))
    e.close()


def writer_process(name, root, n_keys, seed, start, t_end, ready, out):
    e = engine(name, root)
    e.open("durable")
    values = value_pool()
    rng = random.Random(seed)
    ready.put(os.getpid())
    if not start.wait(600):
        return  # the parent is gone
    began, commits = time.monotonic(), 0
    while time.monotonic() < t_end.value:
        e.commit_one(key(rng.randrange(n_keys)), values[rng.randrange(len(values))])
        commits += 1
    out.put(("writer", commits / (time.monotonic() - began)))
    e.close()


def clock_writer(name, root, mode, clock, stamps, start, ready, out):
    e = engine(name, root)
    e.open(mode)
    rng = random.Random(SEED)
    ready.put(os.getpid())
    if not start.wait(600):
        return  # the parent is gone
    stamped = {}
    for i in range(1, stamps + 1):
        time.sleep(rng.uniform(0.0005, 0.002))
        t0 = time.monotonic_ns()
        e.commit_one(clock, struct.pack(">QQ", i, t0))
        stamped[i] = (t0, time.monotonic_ns())
    out.put(("stamped", stamped))
    e.close()


def clock_reader(name, root, how, clock, stamps, ready, out):
    """Record when each stamp is first seen: {n: CLOCK_MONOTONIC ns}."""
    e = engine(name, root)
    e.open()
    seen, last, now = {}, 0, time.monotonic_ns
    deadline = time.monotonic() + 60
    ready.put(os.getpid())
    if how == "wait":
        db, seen_ts = e.db, e.db.committed_ts
        while last < stamps and time.monotonic() < deadline:
            if db.wait_for_commit(seen_ts, timeout=1.0) is None:
                continue
            with db.read() as r:
                v, seen_ts = r.get(clock), r.snapshot_ts
            t = now()
            if v is not None:
                i = struct.unpack(">QQ", v)[0]
                if i != last:
                    seen[i], last = t, i
    else:
        poll = e.poll
        while last < stamps and time.monotonic() < deadline:
            v = poll(clock)
            t = now()
            if v is not None:
                i = struct.unpack(">QQ", v)[0]
                if i != last:
                    seen[i], last = t, i
    out.put(("seen", seen))
    e.close()


def run_processes(procs, ready, n_ready, timeout):
    """Start `procs`, wait for `n_ready` ready signals; the caller then
    starts the work. Returns a cleanup function."""
    for p in procs:
        p.start()

    def cleanup():
        for p in procs:
            p.join(timeout)
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()

    try:
        for _ in range(n_ready):
            ready.get(timeout=timeout)
    except BaseException:
        for p in procs:
            p.kill()
        cleanup()
        raise
    return cleanup


# --- measuring -------------------------------------------------------------------


def timed(fn, *args):
    t = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t, result


def quantile(sorted_ns, q):
    """The q-quantile of sorted nanoseconds, in seconds."""
    return sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * q))] / 1e9


def per_op(fn, args, count):
    seconds, _ = timed(fn, *args)
    return seconds / count


def for_window(fn, window):
    """Call fn() until `window` seconds pass; returns calls per second."""
    calls, began = 0, time.perf_counter()
    end = began + window
    while True:
        fn()
        calls += 1
        t = time.perf_counter()
        if t >= end:
            return calls / (t - began)


def read_window(read_group, groups, t_end):
    """Call read_group(group) for `groups` in turn, round and round, until
    time.monotonic() reaches t_end; returns the number of keys read."""
    gets, now = 0, time.monotonic
    for group in itertools.cycle(groups):
        read_group(group)
        gets += len(group)
        if now() >= t_end:
            return gets


def ns_per_call(f, args, repeat=3):
    """Best-of-`repeat` nanoseconds per call of f over args, and of an
    empty loop."""
    def loop_call():
        t = time.perf_counter_ns()
        for a in args:
            f(a)
        return time.perf_counter_ns() - t

    def loop_empty():
        t = time.perf_counter_ns()
        for a in args:
            pass
        return time.perf_counter_ns() - t

    call = min(loop_call() for _ in range(repeat)) / len(args)
    empty = min(loop_empty() for _ in range(repeat)) / len(args)
    return call, empty


class Table:
    def __init__(self):
        self.rows = []
        self.latency = []

    def add(self, label, kind, values):
        """kind: "rate" (per second, more is better), "time" (seconds, less
        is better); values: {column: number or None}."""
        self.rows.append((label, kind, values))
        print(f"  {label}: " + ", ".join(f"{c}={fmt(kind, v)}" for c, v in values.items()),
              file=sys.stderr, flush=True)

    def markdown(self):
        head = "| workload | " + " | ".join(COLUMNS) + " |"
        sep = "|---|" + "---:|" * len(COLUMNS)
        lines = [head, sep]
        for label, kind, values in self.rows:
            ref = values.get("scribedb")
            cells = []
            for c in COLUMNS:
                v = values.get(c)
                if v is None:
                    cells.append("n/a")
                    continue
                text = fmt(kind, v)
                if ref and c != "scribedb":
                    ratio = v / ref if kind == "time" else ref / v
                    text += f" ({ratio:.2f})"
                elif c == "scribedb":
                    text += " (1.00)"
                cells.append(text)
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def signed(seconds):
    return ("-" if seconds < 0 else "") + fmt("time", abs(seconds))


def fmt(kind, v):
    if v is None:
        return "n/a"
    if kind == "rate":
        for unit, scale in (("M/s", 1e6), ("k/s", 1e3)):
            if v >= scale:
                return f"{v / scale:.2f} {unit}"
        return f"{v:.0f}/s"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v * 1e9:.0f} ns"


# --- the run -----------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, help="default 1,000,000 (--quick: 20,000)")
    parser.add_argument("--quick", action="store_true", help="20,000 keys, short windows")
    parser.add_argument("--window", type=float, default=None, help="seconds per timed window")
    parser.add_argument("--dir", help="where to make the databases (default: a temporary dir)")
    parser.add_argument("--out", help="also write the results (markdown) to this file")
    parser.add_argument("--note", default="", help="a line about the machine, for --out")
    args = parser.parse_args(argv)

    if args.quick:
        n_keys, window, scale = args.keys or 20_000, args.window or 0.4, 0.1
    else:
        n_keys, window, scale = args.keys or 1_000_000, args.window or 3.0, 1.0

    names = ["scribedb", "sqlite"] + (["lmdb"] if lmdb is not None else [])
    root = Path(args.dir or tempfile.mkdtemp(prefix="scribedb-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    table, micro = Table(), Table()
    try:
        run(names, root, n_keys, window, scale, table, micro)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - began

    report = render(args, n_keys, window, elapsed, table, micro)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")


def run(names, root, n_keys, window, scale, table, micro):
    count = lambda n: max(100, int(n * scale))  # noqa: E731
    t0 = time.monotonic()
    log = lambda *a: print(f"[{time.monotonic() - t0:5.1f} s]", *a, file=sys.stderr, flush=True)  # noqa: E731
    values = value_pool()
    log(f"generating {n_keys:,} keys")
    items = sorted((key(i), values[i % len(values)]) for i in range(n_keys))
    engines = {n: engine(n, root) for n in names}

    row = {}
    for n, e in engines.items():
        log(f"loading {n}")
        e.open("durable")
        t, _ = timed(e.load, items, 10_000)
        t2, _ = timed(e.settle)
        row[n] = t + t2
    table.add(f"load {n_keys:,} keys (txns of 10,000, then settle)", "time", row)
    del items

    # Single process reads.
    n_gets, n_scans, n_own = count(300_000), count(60_000), count(100_000)
    keys = random_keys(n_keys, n_gets, SEED + 1)
    starts = random_keys(n_keys, n_scans, SEED + 2)
    for n, e in engines.items():
        assert e.gets(keys[: min(len(keys), 20_000)]) == 0, f"{n}: keys missing"  # and a warm-up
    table.add("random get, 1 read txn for all", "time",
              {n: per_op(e.gets, (keys,), len(keys)) for n, e in engines.items()})
    table.add("random get, 1 read txn each", "time",
              {n: per_op(e.gets_own_txn, (keys[:n_own],), n_own) for n, e in engines.items()})
    table.add("range scan of 10 entries", "time",
              {n: per_op(e.scans, (starts,), len(starts)) for n, e in engines.items()})

    # Writes.
    rng = random.Random(SEED + 3)
    def pairs(m):
        return [(key(rng.randrange(n_keys)), values[rng.randrange(len(values))]) for _ in range(m)]
    batches = [pairs(1000) for _ in range(max(3, int(30 * scale)))]
    singles = pairs(100_000)
    for mode, what in (("durable", "durable: immediate / sync / FULL"),
                       ("relaxed", "not synced per commit: eventual / sync=False / NORMAL")):
        brow, crow = {}, {}
        for n, e in engines.items():
            e.close()
            e.open(mode)
            t, _ = timed(lambda: [e.write_batch(b) for b in batches])
            brow[n] = len(batches) * 1000 / t
            it = itertools.cycle(singles)
            crow[n] = for_window(lambda: e.commit_one(*next(it)), window)
        table.add(f"batch writes (1,000 puts/txn), puts/s, {what}", "rate", brow)
        table.add(f"single-put commits/s, {what}", "rate", crow)
    for e in engines.values():
        e.close()

    # Several processes.
    # Forked (the parent has nothing open now); each process opens the
    # database itself.
    ctx = mp.get_context("fork")
    for readers in (1, 2, 4):
        rrow, wrow = {}, {}
        for n in engines:
            log(f"{n}: {readers} reader process(es) and a writer")
            start, ready, out = ctx.Event(), ctx.Queue(), ctx.Queue()
            t_end = ctx.Value("d", 0.0)
            procs = [
                ctx.Process(daemon=True, target=reader_process,
                            args=(n, str(root), n_keys, count(100_000), SEED + 10 + j,
                                  min(2.0, window / 2),
                                  start, t_end, ready, out))
                for j in range(readers)
            ] + [ctx.Process(daemon=True, target=writer_process,
                             args=(n, str(root), n_keys, SEED + 20, start, t_end, ready, out))]
            cleanup = run_processes(procs, ready, len(procs), timeout=300)
            try:
                t_end.value = time.monotonic() + window
                start.set()
                got = [out.get(timeout=window + 120) for _ in procs]
            finally:
                cleanup()
            rrow[n] = sum(v for what, v in got if what == "reader")
            wrow[n] = sum(v for what, v in got if what == "writer")
        table.add(f"MP: gets/s of {readers} reader process{'es' if readers > 1 else ''} "
                  "(txns of 10 gets) beside a writer", "rate", rrow)
        table.add(f"MP: durable single-put commits/s of the writer, beside {readers} "
                  f"reader{'s' if readers > 1 else ''}", "rate", wrow)

    # Commit to visible.
    stamps = max(50, count(400))
    detail = table.latency = []
    for mode, what in (("durable", "durable"), ("relaxed", "not synced per commit")):
        p50, p99, wait50, wait99 = {}, {}, {}, {}
        runs = [(n, "poll") for n in engines] + [("scribedb", "wait")]
        for n, how in runs:
            log(f"{n}: commit to visible, {what}, {how}")
            start, ready, out = ctx.Event(), ctx.Queue(), ctx.Queue()
            clock = CLOCK + f"{mode}-{how}".encode()
            procs = [ctx.Process(daemon=True, target=clock_reader,
                                 args=(n, str(root), how, clock, stamps, ready, out)),
                     ctx.Process(daemon=True, target=clock_writer,
                                 args=(n, str(root), mode, clock, stamps, start, ready, out))]
            cleanup = run_processes(procs, ready, 2, timeout=300)
            try:
                start.set()
                got = dict(out.get(timeout=180) for _ in procs)
            finally:
                cleanup()
            stamped, seen = got["stamped"], got["seen"]
            lat = sorted(t - stamped[i][0] for i, t in seen.items())
            after = sorted(t - stamped[i][1] for i, t in seen.items())
            took = sorted(t1 - t0 for t0, t1 in stamped.values())
            q50, q99 = quantile(lat, 0.5), quantile(lat, 0.99)
            if how == "poll":
                p50[n], p99[n] = q50, q99
            else:
                wait50[n], wait99[n] = q50, q99
            detail.append((what, n, "wait_for_commit" if how == "wait" else "polling",
                           len(seen), stamps, q50, q99, quantile(took, 0.5), quantile(after, 0.5)))
        table.add(f"commit to visible, median, {what}, polling", "time", p50)
        table.add(f"commit to visible, p99, {what}, polling", "time", p99)
        others = {n: v for n, v in p50.items() if n != "scribedb"}
        table.add(f"commit to visible, median, {what}: scribedb wait_for_commit, others polling",
                  "time", {**others, **wait50})
        others = {n: v for n, v in p99.items() if n != "scribedb"}
        table.add(f"commit to visible, p99, {what}: scribedb wait_for_commit, others polling",
                  "time", {**others, **wait99})

    # The binding's own cost.
    e = engines["scribedb"]
    e.open()
    hot = random_keys(n_keys, 1000, SEED + 4) * max(20, int(200 * scale))
    cold = random_keys(n_keys, count(200_000), SEED + 5)
    missing = [k + b"-" for k in hot]
    d = {k: k for k in hot}
    rows = []
    with e.db.read() as r:
        for label, f, args in (
            ("`len(k)` (a no-op native call)", len, hot),
            ("`d.get(k)` (a dict of the same keys)", d.get, hot),
            ("scribedb `r.get(k)`, 1,000 hot keys", r.get, hot),
            ("scribedb `r.get(k)`, absent keys", r.get, missing),
            ("scribedb `r.get_view(k)`, 1,000 hot keys", r.get_view, hot[:20_000]),
            (f"scribedb `r.get(k)`, random keys of {n_keys:,}", r.get, cold),
        ):
            call, empty = ns_per_call(f, args)
            rows.append((label, call, call - empty))
    # A database of a few keys: what is left is mostly the binding.
    tiny = scribedb.open(root / "tiny", durability="none")
    few = hot[:8]
    with tiny.write() as w:
        for k in few:
            w.put(k, values[0])
    with tiny.read() as r:
        call, empty = ns_per_call(r.get, few * (len(hot) // 8))
    rows.append(("scribedb `r.get(k)`, a database of 8 keys (the binding and the engine's fixed cost)", call, call - empty))
    tiny.close()
    call, empty = ns_per_call(lambda _: e.db.read().close(), hot[:20_000])
    rows.append(("scribedb `db.read()` + `close()` (via a lambda)", call, call - empty))
    call, empty = ns_per_call(lambda _: None, hot)
    rows.append(("a Python lambda doing nothing (for the line above)", call, call - empty))
    e.close()
    if lmdb is not None:
        le = engines["lmdb"]
        le.open()
        with le.env.begin() as txn:
            call, empty = ns_per_call(txn.get, hot)
        rows.append(("lmdb `txn.get(k)`, 1,000 hot keys", call, call - empty))
        le.close()
    se = engines["sqlite"]
    se.open()
    cur = se.conn.cursor()
    cur.execute("BEGIN")
    call, empty = ns_per_call(lambda k: cur.execute(Sqlite.GET, (k,)).fetchone(), hot[:50_000])
    cur.execute("COMMIT")
    rows.append(("sqlite `execute(...).fetchone()` (via a lambda), 1,000 hot keys", call, call - empty))
    se.close()
    micro.rows = rows


def render(args, n_keys, window, elapsed, table, micro):
    versions = [f"Python {platform.python_version()}", f"scribedb {metadata.version('scribedb')}"]
    if lmdb is not None:
        versions.append(f"lmdb {metadata.version('lmdb')} (LMDB {'.'.join(map(str, lmdb.version()))})")
    versions.append(f"sqlite3 (SQLite {sqlite3.sqlite_version})")
    cmd = "python bench.py" + " --quick" * args.quick
    if args.keys:
        cmd += f" --keys {args.keys}"
    if args.window:
        cmd += f" --window {args.window}"
    if args.out:
        cmd += f" --out {Path(args.out).name}"
    lines = [
        "# ScribeDB from Python, compared",
        "",
        "```text",
        cmd.strip(),
        "```",
        "",
        f"{n_keys:,} keys; {os.cpu_count()} CPUs; {', '.join(versions)}; "
        f"timed windows of {window:g} s; run time {elapsed:.0f} s.",
    ]
    if args.note:
        lines += ["", args.note]
    lines += [
        "",
        "Each cell: the figure, and in parentheses the engine's cost relative to ScribeDB's in "
        "the same row (time per operation, or 1/throughput): above 1.00 ScribeDB is faster, "
        "below it slower. n/a: not measured (the engine has no such call, or is not installed).",
        "",
        table.markdown(),
        "",
        "## Commit to visible, in detail",
        "",
        "Per run: stamps seen (a reader can miss one that the next overwrote before it looked), "
        "clock-to-seen median and p99, the writer's commit call alone (median), and the median "
        "time from the commit call's return to the reader seeing it (negative: seen before the "
        "writer was back from the call).",
        "",
        "| commits | engine | reader | seen | clock to seen, median | p99 | commit call, median "
        "| return to seen, median |",
        "|---|---|---|---:|---:|---:|---:|---:|",
        *[f"| {what} | {n} | {how} | {got}/{of} | {fmt('time', a)} | {fmt('time', b)} | "
          f"{fmt('time', c)} | {signed(d)} |"
          for what, n, how, got, of, a, b, c, d in table.latency],
        "",
        "## The binding's own cost",
        "",
        "Nanoseconds per call in a `for k in keys: f(k)` loop (best of 3), and the same minus "
        "the loop itself. `len(k)` is the cost of any native call; `r.get` on a database of 8 "
        "keys adds what the binding does (argument parsing, the transaction's lock, a lookup "
        "that finds the key at once, a new `bytes` of the value); what a get costs beyond that "
        "on the loaded database is the engine's search (and its memory misses, for random "
        "keys).",
        "",
        "| call | ns/call | minus the loop |",
        "|---|---:|---:|",
    ]
    for label, call, net in micro.rows:
        lines.append(f"| {label} | {call:.0f} | {net:.0f} |")
    lines += [
        "",
        "## Settings",
        "",
        "- **scribedb**: default options; durability `immediate` (a commit returns once its log "
        "record is synced with fdatasync; readers see it only then) or `eventual` (a commit "
        "returns and is visible at once; a background sync follows within about 50 ms). "
        "`compact()` after the load.",
        "- **lmdb**: py-lmdb defaults (`sync=True`: a commit returns after fdatasync of the data "
        "file; `readahead=True`), map size 64 GiB; the relaxed rows use `sync=False` (no sync at "
        "commit: a system crash can lose recent commits, and can corrupt the environment unless "
        "the filesystem keeps write order). Reads copy values into `bytes` (`buffers=False`), "
        "as ScribeDB's `get` does.",
        "- **sqlite**: the standard library's sqlite3 with `isolation_level=None` and explicit "
        "`BEGIN` / `BEGIN IMMEDIATE`; `journal_mode=WAL`; `synchronous=FULL` (durable rows) or "
        "`NORMAL` (relaxed rows: the WAL is synced at checkpoints only, so a power loss or OS "
        "crash can lose recent commits); table `kv(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT "
        "ROWID`; `cache_size` 1 GiB per connection; `busy_timeout` 10 s; "
        "`wal_checkpoint(TRUNCATE)` after the load. Reads in one `BEGIN`...`COMMIT`, except the "
        "one-transaction-per-get row and polling (autocommit).",
        "- **Multi-process rows**: forked processes (the parent has no database open then), each "
        "opening the database itself; readers "
        "warm up with random gets before the window, then do read transactions of 10 random "
        "gets; the writer commits one put of a random loaded key per transaction, durably. "
        "Readers' rates are summed.",
        "- **Commit to visible**: the writer sleeps 0.5-2 ms, stores (n, CLOCK_MONOTONIC ns) in "
        "the clock key and commits; the reader takes the clock when it first sees n; the "
        "latency includes the commit call (see the detail table).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
