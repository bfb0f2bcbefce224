"""The programs in python/examples/, run with small sizes, and their
results checked here rather than trusted."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import scribedb

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))  # inherited by spawned children too

import cache  # noqa: E402
import job_queue  # noqa: E402


def has_gunicorn():
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        return False
    return True


needs_gunicorn = pytest.mark.skipif(
    not has_gunicorn(), reason="gunicorn is not installed (pip install gunicorn)"
)


def tail(path, lines=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- gunicorn ---------------------------------------------------------------


@needs_gunicorn
def test_gunicorn_workers_answer_from_consistent_snapshots(tmp_db, tmp_path):
    import gunicorn_app as app

    clients, per_client = 8, 300
    app.create_bank(tmp_db)
    port = app.free_port()
    log_path = tmp_path / "gunicorn.log"
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    # Commits that do not wait for the disk come every few dozen
    # microseconds: a response mixing two of them would not go unseen.
    writer = ctx.Process(
        target=app.run_transfers,
        args=(str(tmp_db),),
        kwargs={"stop": stop, "durability": "eventual"},
    )
    server = None
    with open(log_path, "wb") as log:
        writer.start()
        try:
            server = app.start_server(tmp_db, port, workers=4, log=log)
            app.wait_until_serving(server, port, timeout=30)
            with ThreadPoolExecutor(clients) as pool:
                runs = list(pool.map(app.client, [port] * clients, [per_client] * clients))
        except Exception as e:
            raise AssertionError(f"{e!r}\ngunicorn's log:\n{tail(log_path)}") from e
        finally:
            stop.set()
            if server is not None:
                app.stop_server(server)
            writer.join(15)
            if writer.is_alive():
                writer.kill()
                writer.join()
    assert writer.exitcode == 0
    log_text = log_path.read_text(errors="replace")
    assert "Traceback" not in log_text, tail(log_path)

    everything = {k.decode() for k in app.KEYS}
    answers = [a for run in runs for a in run]
    assert len(answers) == clients * per_client
    full = 0
    for run in runs:
        tss = [a["snapshot_ts"] for a in run]
        # One client's requests follow one another, so each sees a
        # snapshot at least as new as the one before, whatever worker.
        assert tss == sorted(tss)
        for a in run:
            values = a["values"]
            assert all(v is not None for v in values.values()), a
            if set(values) == everything:
                full += 1
                balances = [int(v) for v in values.values()]
                assert sum(balances) == app.TOTAL, a
                assert min(balances) >= 0, a
            else:
                assert len(values) == 1 and 0 <= int(*values.values()) <= app.TOTAL, a
    assert full > len(answers) // 2
    assert len({a["pid"] for a in answers}) >= 2  # several workers answered
    assert len({a["snapshot_ts"] for a in answers}) > 10  # while the writer wrote

    with scribedb.open(tmp_db) as db, db.read() as r:
        assert sum(int(r.get(k)) for k in app.KEYS) == app.TOTAL


# --- the job queue -------------------------------------------------------------


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_job_queue_runs_each_job_exactly_once(tmp_db, start_method):
    jobs, workers, batch = 150, 4, 5
    reports = job_queue.run(
        tmp_db, jobs=jobs, workers=workers, start_method=start_method, batch=batch, timeout=60
    )
    finished = sorted(seq for r in reports for seq in r["done"])
    assert finished == list(range(jobs))  # none lost, none run twice

    found = job_queue.results(tmp_db)
    assert found[job_queue.JOB] == {}
    assert found[job_queue.CLAIMED] == {}
    assert sorted(found[job_queue.DONE]) == list(range(jobs))
    for seq, result in found[job_queue.DONE].items():
        assert result == job_queue.work(b"payload %d" % seq)

    # Idle workers waited for commits; and each wait ended with a commit
    # (there are about 2 per job and 1 per batch), not in a busy loop.
    assert sum(r["waits"] for r in reports) > 0
    commits = 2 * jobs + jobs // batch + 1
    assert all(r["waits"] <= commits for r in reports), reports


# --- the cache ---------------------------------------------------------------------


def test_cache_readers_never_see_a_mixed_generation(tmp_db):
    generations, reports = cache.run(tmp_db, readers=3, entries=32, seconds=2.0)
    assert generations >= 3
    for r in reports:
        assert r["violations"] == 0, r
        assert r["snapshots"] > 0 and r["reads"] > 0, r
    # The readers ran while the refresher published.
    assert max(r["generations"] for r in reports) >= 2, reports
    assert max(r["changes_seen"] for r in reports) >= 1, reports


def test_a_mixed_snapshot_would_be_caught(tmp_db):
    # The check itself: an entry left from another generation counts.
    import random

    with scribedb.open(tmp_db) as db:
        cache.publish(db, 1, 8)
        with db.write() as w:
            w.put(cache.GENERATION, b"2")
        with db.read() as r:
            assert cache.check_snapshot(r, 8, None, random.Random(1)) == (2, 8)
            assert cache.check_snapshot(r, 8, 3, random.Random(1)) == (2, 3)


# --- each example as a script --------------------------------------------------------


SCRIPTS = [
    pytest.param(["gunicorn_app.py", "--requests", "200"], marks=needs_gunicorn, id="gunicorn_app"),
    pytest.param(["job_queue.py", "--jobs", "40", "--start-method", "fork"], id="job_queue"),
    pytest.param(["cache.py", "--seconds", "1"], id="cache"),
]


@pytest.mark.parametrize("argv", SCRIPTS)
def test_example_runs_as_a_script(argv, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, *argv], cwd=EXAMPLES, env=dict(os.environ, TMPDIR=str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left running
        except ProcessLookupError:
            pass
        proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "Traceback" not in text, text
