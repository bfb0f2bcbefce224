"""A durable job queue in ScribeDB, drained by a ``multiprocessing`` pool.

The queue is a handful of key prefixes; a job moves from one to the next
inside write transactions, so it is always in exactly one place:

    job:<seq>       waiting (the value is its payload)
    claimed:<seq>   taken by a worker (the value is the worker's pid)
    done:<seq>      finished (the value is the result)
    queue:next      the next sequence number
    queue:closed    set once the producer will add no more jobs

* Each pool worker opens its own handle in the pool's ``initializer``
  (a handle inherited through ``fork`` raises ``scribedb.Forked``; with
  ``spawn`` there is nothing to inherit). The same code works with both.
* Claiming is a write transaction: it reads the first ``job:`` key and
  moves it to ``claimed:``. Only one process writes at a time and each
  write transaction sees every commit before it, so two workers can never
  claim the same job.
* The work happens outside any transaction (other workers claim and
  finish meanwhile); finishing is a second write transaction that moves
  ``claimed:`` to ``done:``. A job whose worker died stays in ``claimed:``
  with that pid, for a supervisor to put back (not shown).
* An idle worker does not sleep or poll: it notes the snapshot in which
  it found no job, and ``db.wait_for_commit(snapshot_ts)`` returns as soon
  as any process commits after it (the GIL is released while it waits).
  A job enqueued later has a later commit, so no wake-up can be missed.

Run it with ``python job_queue.py`` (add ``--help`` for the options).
"""

import argparse
import hashlib
import multiprocessing
import os
import tempfile
import time

import scribedb

JOB, CLAIMED, DONE = b"job:", b"claimed:", b"done:"
NEXT, CLOSED = b"queue:next", b"queue:closed"


def seq_key(prefix, seq):
    return prefix + b"%010d" % seq


# --- the producer ---------------------------------------------------------


def enqueue(db, payloads):
    """Add jobs in one transaction; returns their sequence numbers."""
    with db.write() as w:
        first = int(w.get(NEXT) or b"0")
        for i, payload in enumerate(payloads):
            w.put(seq_key(JOB, first + i), payload)
        w.put(NEXT, b"%d" % (first + len(payloads)))
    return list(range(first, first + len(payloads)))


def close_queue(db):
    with db.write() as w:
        w.put(CLOSED, b"1")


# --- the workers -------------------------------------------------------------

_db = None  # this worker's own handle


def init_worker(path):
    """The pool's initializer: runs once in each worker process."""
    global _db
    _db = scribedb.open(path)


def work(payload):
    """The job itself: here, a checksum of its payload."""
    return hashlib.sha256(payload).hexdigest().encode()


def claim(db):
    """Move the first waiting job to claimed:; returns ((seq, payload),
    None, False), or (None, the snapshot in which there was none, whether
    the queue was closed in that snapshot)."""
    me = b"%d" % os.getpid()
    with db.write() as w:
        for key, payload in w.prefix(JOB):
            seq = int(key[len(JOB) :])
            w.delete(key)
            w.put(seq_key(CLAIMED, seq), me)
            return (seq, payload), None, False
        closed = w.get(CLOSED) is not None
        w.abort()  # nothing to write
        return None, w.snapshot_ts, closed


def finish(db, seq, result):
    me = b"%d" % os.getpid()
    with db.write() as w:
        if w.get(seq_key(CLAIMED, seq)) != me or w.get(seq_key(DONE, seq)) is not None:
            raise RuntimeError(f"job {seq} is not ours to finish")
        w.delete(seq_key(CLAIMED, seq))
        w.put(seq_key(DONE, seq), result)


def drain():
    """Run jobs until the queue is closed and empty. Returns what this
    worker did: its pid, the jobs it finished and how often it waited."""
    db = _db
    done, waits = [], 0
    while True:
        job, seen, closed = claim(db)
        if job is not None:
            seq, payload = job
            finish(db, seq, work(payload))
            done.append(seq)
            continue
        if closed:
            break  # closed and (in that same snapshot) empty: nothing will come
        # Sleep until some process commits after `seen`: a new job, or
        # the queue closing. The timeout only bounds a lost producer.
        db.wait_for_commit(seen, timeout=10.0)
        waits += 1
    return {"pid": os.getpid(), "done": done, "waits": waits}


# --- putting it together ------------------------------------------------------


def run(path, jobs=100, workers=4, start_method="spawn", batch=5, pause=0.02, timeout=60.0):
    """Start `workers` pool processes, enqueue `jobs` jobs in batches of
    `batch` (pausing between batches so workers run dry and wait), close
    the queue, and return the workers' reports."""
    db = scribedb.open(path)
    try:
        ctx = multiprocessing.get_context(start_method)
        # With fork, the workers inherit `db` too; they never use it.
        with ctx.Pool(workers, initializer=init_worker, initargs=(str(path),)) as pool:
            pending = [pool.apply_async(drain) for _ in range(workers)]
            # Not needed for correctness: wait until every worker has opened
            # the database, so that the demo shows workers running dry.
            deadline = time.monotonic() + timeout
            while db.stats()["processes"] < workers + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            for start in range(0, jobs, batch):
                enqueue(db, [b"payload %d" % i for i in range(start, min(jobs, start + batch))])
                time.sleep(pause)
            close_queue(db)
            return [p.get(max(0.0, deadline - time.monotonic())) for p in pending]
    finally:
        db.close()


def results(path):
    """Every key of the queue, by prefix: {prefix: {seq: value}}."""
    out = {JOB: {}, CLAIMED: {}, DONE: {}}
    with scribedb.open(path) as db, db.read() as r:
        for prefix, found in out.items():
            for key, value in r.prefix(prefix):
                found[int(key[len(prefix) :])] = value
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database path (default: a temporary one)")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--start-method", choices=["spawn", "fork", "forkserver"], default="spawn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or os.path.join(tmp, "queue.db")
        started = time.monotonic()
        reports = run(path, args.jobs, args.workers, args.start_method)
        elapsed = time.monotonic() - started
        found = results(path)
    for rep in reports:
        print(f"worker {rep['pid']}: {len(rep['done'])} jobs, waited {rep['waits']} times")
    finished = [seq for rep in reports for seq in rep["done"]]
    print(
        f"{len(finished)} jobs finished ({len(set(finished))} distinct) in {elapsed:.1f} s;"
        f" left: {len(found[JOB])} waiting, {len(found[CLAIMED])} claimed;"
        f" {len(found[DONE])} results"
    )


if __name__ == "__main__":
    main()
