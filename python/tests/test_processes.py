"""Several processes on one database: multiprocessing under fork and
spawn, readers checking an invariant in every snapshot while one process
commits, a handle inherited through fork, and a killed worker whose reader
slot is reclaimed."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import scribedb

ACCOUNTS = 50
START = 1000
TOTAL = ACCOUNTS * START


def account(i):
    return b"acct:%03d" % i


def create_bank(path):
    db = scribedb.open(path)
    with db.write() as w:
        for i in range(ACCOUNTS):
            w.put(account(i), b"%d" % START)
    db.close()


def transfer_writer(path, seconds):
    """Move money between accounts, one transaction per transfer."""
    import random

    db = scribedb.open(path, durability="none")
    rng = random.Random(os.getpid())
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        a, b = rng.sample(range(ACCOUNTS), 2)
        amount = rng.randint(1, 50)
        with db.write() as w:
            va = int(w.get(account(a)))
            vb = int(w.get(account(b)))
            w.put(account(a), b"%d" % (va - amount))
            w.put(account(b), b"%d" % (vb + amount))
        n += 1
    db.close()
    return n


def check_snapshots(path, seconds):
    """Check the total in every snapshot; returns (snapshots, violations)."""
    db = scribedb.open(path)
    checked = bad = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with db.read() as r:
            total = sum(int(v) for _, v in r.prefix(b"acct:"))
            got = [r.get(account(i)) for i in range(0, ACCOUNTS, 7)]
        checked += 1
        if total != TOTAL or any(g is None for g in got):
            bad += 1
    db.close()
    return checked, bad


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_readers_see_a_constant_total_while_one_process_commits(tmp_path, method):
    path = str(tmp_path / "bank")
    create_bank(path)
    # The parent keeps a handle open: a forked child must not use it.
    parent = scribedb.open(path)
    ctx = mp.get_context(method)
    with ctx.Pool(4) as pool:
        writer = pool.apply_async(transfer_writer, (path, 2.0))
        readers = [pool.apply_async(check_snapshots, (path, 2.0)) for _ in range(3)]
        transfers = writer.get(60)
        results = [r.get(60) for r in readers]
    assert transfers > 10
    assert all(checked > 10 for checked, _ in results)
    assert sum(bad for _, bad in results) == 0
    with parent.read() as r:
        assert sum(int(v) for _, v in r.prefix(b"acct:")) == TOTAL
    assert parent.check()["ok"]


def test_a_handle_used_after_fork_raises_and_the_parent_is_untouched(tmp_path):
    path = str(tmp_path / "db")
    db = scribedb.open(path)
    with db.write() as w:
        w.put(b"k", b"v")
    r = db.read()
    held = db.write()  # the parent holds the writer role across the fork
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for attempt in (db.read, db.write, lambda: r.get(b"k")):
                try:
                    attempt()
                    code = 2
                except scribedb.Forked as e:
                    if "open the database in each worker" not in str(e):
                        code = 3
                    if e.opened_by != os.getppid():
                        code = 4
            # Dropping the inherited objects must not release anything.
            del r
            del db
            import gc

            gc.collect()
            own = scribedb.open(path, writer_timeout=0.05)
            if own.read().get(b"k") != b"v":
                code = 5
            try:
                own.write()
                code = 6  # the parent's writer role was released
            except scribedb.WriterBusy:
                pass
        except BaseException:
            code = 7
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, os.WEXITSTATUS(status)
    assert r.get(b"k") == b"v"
    assert [x["live"] for x in db.readers()] == [True, True]  # r and the writer's
    held.put(b"k", b"v2")
    held.commit()
    assert db.read().get(b"k") == b"v2"


CHILD = textwrap.dedent(
    """
    import sys, time, scribedb
    db = scribedb.open(sys.argv[1])
    r = db.read()
    print("reading", r.snapshot_ts, flush=True)
    time.sleep(60)
    """
)


def test_a_killed_workers_reader_slot_is_reclaimed(tmp_path):
    path = str(tmp_path / "db")
    db = scribedb.open(path)
    with db.write() as w:
        w.put(b"k", b"v")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, path], stdout=subprocess.PIPE, text=True
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("reading"), line
        readers = db.readers()
        assert len(readers) == 1 and readers[0]["pid"] == child.pid and readers[0]["live"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    dead = db.readers()
    assert len(dead) == 1 and not dead[0]["live"]
    assert db.reclaim_dead_readers() == 1
    assert db.readers() == []
    # The snapshot it pinned no longer holds history back.
    with db.write() as w:
        w.put(b"k", b"v2")
    assert db.stats()["oldest_snapshot"] == w.commit_ts


def waiter(path, after, conn):
    db = scribedb.open(path)
    conn.send("ready")
    got = db.wait_for_commit(after, timeout=30)
    conn.send(got)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_wait_for_commit_wakes_another_process(tmp_path, method):
    path = str(tmp_path / "db")
    db = scribedb.open(path, durability="none")
    with db.write() as w:
        w.put(b"k", b"0")
    ctx = mp.get_context(method)
    ours, theirs = ctx.Pipe()
    p = ctx.Process(target=waiter, args=(path, w.commit_ts, theirs))
    p.start()
    try:
        assert ours.poll(30) and ours.recv() == "ready"
        time.sleep(0.05)
        with db.write() as w:
            w.put(b"k", b"1")
        assert ours.poll(30)
        assert ours.recv() == w.commit_ts
    finally:
        p.join(30)
        if p.is_alive():
            p.kill()
    assert p.exitcode == 0
