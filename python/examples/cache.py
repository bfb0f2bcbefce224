"""A cache shared by worker processes, refreshed atomically.

One process (the refresher) recomputes a table of entries and publishes
each new version of it as a *generation*, in one write transaction:

    cache:generation        the generation number, g
    cache:entry:<name>      "<g> <value>": every entry stamped with g

Worker processes read it with snapshots. A snapshot shows exactly one
commit, so the entries it returns all carry the generation it returns:
a reader never sees half of a refresh, even while refreshes run back to
back, and the refresher never waits for readers (it does not even know
they exist). There is no invalidation protocol and no lock.

* Each worker opens its own handle (here in ``multiprocessing.Pool``'s
  initializer); a handle does not survive ``fork``.
* A cache can be rebuilt, so the refresher commits with
  ``durability="eventual"``: a commit returns before it reaches the disk
  (a background sync follows within about 50 ms); an OS crash can lose
  the last refreshes, never make a torn one visible.
* ``db.committed_ts`` is a cheap way for a worker to notice that
  something changed (it is one load from shared memory), for example to
  drop what it derived from the previous generation.

``python cache.py`` runs a refresher and three readers for a few seconds
and prints what the readers saw; ``check_snapshot`` is what they verify.
"""

import argparse
import multiprocessing
import os
import random
import tempfile
import time

import scribedb

GENERATION = b"cache:generation"
ENTRY = b"cache:entry:"


def entry_key(i):
    return ENTRY + b"%05d" % i


def compute(generation, i):
    """The expensive computation the cache saves: here, a fake one."""
    return b"%d %s" % (generation, b"x" * (20 + (generation * 7 + i) % 80))


# --- the refresher ------------------------------------------------------------


def publish(db, generation, entries):
    """Write a whole generation in one transaction."""
    with db.write() as w:
        for i in range(entries):
            w.put(entry_key(i), compute(generation, i))
        w.put(GENERATION, b"%d" % generation)
    return w.commit_ts


def refresh(path, entries, seconds, pause=0.0):
    """Publish generation after generation for `seconds`; returns how many."""
    generations = 0
    with scribedb.open(path, durability="eventual") as db:
        with db.read() as r:
            generation = int(r.get(GENERATION) or b"0")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            generation += 1
            publish(db, generation, entries)
            generations += 1
            if pause:
                time.sleep(pause)
    return generations


# --- the readers ---------------------------------------------------------------

_db = None


def init_reader(path):
    """Pool initializer: open this process's handle."""
    global _db
    _db = scribedb.open(path)


def check_snapshot(snapshot, entries, sample, rng):
    """Read the generation and `sample` random entries (all of them when
    `sample` is None, with a scan) from one snapshot; returns the
    generation and the number of entries stamped with another one."""
    generation = snapshot.get(GENERATION)
    stamp = generation + b" "
    if sample is None:
        seen = list(snapshot.prefix(ENTRY))
        bad = sum(1 for _, value in seen if not value.startswith(stamp))
        return int(generation), bad + (entries - len(seen))  # a missing one is wrong too
    bad = 0
    for i in rng.sample(range(entries), sample):
        value = snapshot.get(entry_key(i))
        if value is None or not value.startswith(stamp):
            bad += 1
    return int(generation), bad


def read(entries, seconds, sample=8, scan_every=10):
    """Read snapshots for `seconds`; every `scan_every`-th one is a full
    scan. Returns counts: snapshots, entry reads, violations, and how
    many generations and changes of committed_ts this reader saw."""
    db, rng = _db, random.Random()
    snapshots = reads = violations = changes = 0
    generations = set()
    last_ts = db.committed_ts
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        scan = snapshots % scan_every == 0
        with db.read() as snapshot:
            generation, bad = check_snapshot(snapshot, entries, None if scan else sample, rng)
        snapshots += 1
        reads += entries if scan else sample
        violations += bad
        generations.add(generation)
        if db.committed_ts != last_ts:  # cheap: something was published
            last_ts = db.committed_ts
            changes += 1
    return {
        "pid": os.getpid(),
        "snapshots": snapshots,
        "reads": reads,
        "violations": violations,
        "generations": len(generations),
        "changes_seen": changes,
    }


# --- putting it together ---------------------------------------------------------


def run(path, readers=3, entries=64, seconds=2.0, start_method="spawn"):
    """Publish generation 1, then run the refresher and `readers` readers
    side by side for `seconds`; returns (generations published, reports)."""
    with scribedb.open(path) as db:
        publish(db, 1, entries)
    ctx = multiprocessing.get_context(start_method)
    with ctx.Pool(readers, initializer=init_reader, initargs=(str(path),)) as pool:
        # Start the readers first, so that they are all reading while the
        # refresher runs.
        pending = [pool.apply_async(read, (entries, seconds)) for _ in range(readers)]
        refresher = ctx.Process(target=refresh, args=(path, entries, seconds))
        refresher.start()
        try:
            reports = [p.get(seconds + 60) for p in pending]
        finally:
            refresher.join(seconds + 60)
            if refresher.is_alive():
                refresher.kill()
                refresher.join()
    with scribedb.open(path) as db, db.read() as r:
        generations = int(r.get(GENERATION))
    return generations, reports


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database path (default: a temporary one)")
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--entries", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or os.path.join(tmp, "cache.db")
        generations, reports = run(path, args.readers, args.entries, args.seconds)
    print(f"refresher: {generations} generations of {args.entries} entries")
    for r in reports:
        print(
            f"reader {r['pid']}: {r['snapshots']} snapshots, {r['reads']} entry reads,"
            f" {r['generations']} generations seen, {r['violations']} violations"
        )
    if any(r["violations"] for r in reports):
        raise SystemExit("a snapshot mixed generations")


if __name__ == "__main__":
    main()
