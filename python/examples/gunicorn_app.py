"""Serving reads from a ScribeDB database with gunicorn's pre-fork workers.

Every gunicorn worker is a separate process; they all read one database on
disk while another process writes to it. The recipe:

* Never open the database at import time, and never in gunicorn's master:
  a handle does not survive ``fork()`` (using an inherited one raises
  ``scribedb.Forked``). Open it in the ``post_fork`` hook, which runs in
  each new worker (see ``gunicorn.conf.py``, next to this file), and close
  it in ``worker_exit``.
* Answer each request from one read transaction (a snapshot): every value
  in a response comes from the same commit, however fast the writer goes.
  Starting a snapshot costs a few atomic operations on shared memory; no
  lock is taken and the writer never waits for readers.

The data is a small bank: ``balance:<name>`` keys whose values always sum
to ``TOTAL``. The writer moves money between two accounts in each
transaction, so a response that mixed two commits would show the wrong
sum.

    GET /get?key=balance:alice&key=balance:bob
    -> {"pid": 4242, "snapshot_ts": 1177..., "values": {"balance:alice": "981", ...}}

Run the whole demo (bank, writer, gunicorn with 4 workers, a few thousand
requests checked against the invariant) with ``python gunicorn_app.py``.
Or by hand, in three shells::

    python gunicorn_app.py --db bank.db --setup-only
    SCRIBEDB_APP_DB=bank.db gunicorn -c gunicorn.conf.py gunicorn_app:app
    python gunicorn_app.py --db bank.db --write-only --seconds 60
    curl '127.0.0.1:8000/get?key=balance:alice&key=balance:bob'
"""

import argparse
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import scribedb

HERE = Path(__file__).resolve().parent
DB_ENV = "SCRIBEDB_APP_DB"  # where the workers find the database's path

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
KEYS = [b"balance:" + name.encode() for name in NAMES]
START = 1000
TOTAL = START * len(NAMES)

# --- the app (runs in each gunicorn worker) ---------------------------------

_db = None


def database_path():
    return os.environ.get(DB_ENV, "bank.db")


def open_database():
    """Open this worker's handle; called by the post_fork hook."""
    global _db
    _db = scribedb.open(database_path())


def close_database():
    global _db
    if _db is not None:
        _db.close()
        _db = None


def app(environ, start_response):
    """The WSGI application."""
    if environ.get("PATH_INFO") != "/get":
        return respond(start_response, "404 Not Found", {"error": "try /get?key=..."})
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    keys = query.get("key", [])
    if not keys:
        return respond(start_response, "400 Bad Request", {"error": "no key= given"})
    if _db is None:
        raise RuntimeError("no database: open_database() runs in gunicorn's post_fork hook")
    values = {}
    with _db.read() as snapshot:  # one snapshot for the whole response
        for key in keys:
            value = snapshot.get(key.encode())
            values[key] = None if value is None else value.decode("utf-8", "replace")
        ts = snapshot.snapshot_ts
    return respond(
        start_response, "200 OK", {"pid": os.getpid(), "snapshot_ts": ts, "values": values}
    )


def respond(start_response, status, doc):
    body = json.dumps(doc).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


# --- the writer (another process) --------------------------------------------


def create_bank(path):
    """Create the accounts, each with START."""
    with scribedb.open(path) as db:
        with db.write() as w:
            for key in KEYS:
                w.put(key, b"%d" % START)


def run_transfers(path, seconds=None, stop=None, durability="immediate"):
    """Move random amounts between random accounts, one commit per
    transfer, until `stop` (a multiprocessing Event) is set or `seconds`
    pass. Returns the number of transfers. (With durability="eventual" a
    commit does not wait for the disk, so there are many more of them.)"""
    rng = random.Random()
    deadline = None if seconds is None else time.monotonic() + seconds
    transfers = 0
    with scribedb.open(path, durability=durability) as db:
        while not (stop is not None and stop.is_set()):
            if deadline is not None and time.monotonic() >= deadline:
                break
            payer, payee = rng.sample(KEYS, 2)
            with db.write() as w:  # reads and writes in one transaction
                have = int(w.get(payer))
                amount = rng.randint(0, have)
                w.put(payer, b"%d" % (have - amount))
                w.put(payee, b"%d" % (int(w.get(payee)) + amount))
            transfers += 1
    return transfers


# --- running gunicorn, and a client -------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(path, port, workers=4, log=None):
    """Start gunicorn in its own process group; returns the Popen."""
    cmd = [
        sys.executable, "-m", "gunicorn",
        "--config", str(HERE / "gunicorn.conf.py"),
        "--chdir", str(HERE),
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--graceful-timeout", "5",
        "gunicorn_app:app",
    ]  # fmt: skip
    env = dict(os.environ, **{DB_ENV: str(path)})
    return subprocess.Popen(
        cmd, env=env, stdout=log or subprocess.DEVNULL, stderr=log or subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def wait_until_serving(server, port, timeout=20.0):
    """Return once a worker answers; raise if gunicorn exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {server.returncode}")
        try:
            return fetch(port, [KEYS[0].decode()], timeout=2.0)
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def stop_server(server, timeout=10.0):
    """SIGTERM (a graceful stop), then SIGKILL to the whole process group."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(server.pid, signal.SIGKILL)  # any worker left behind
    except ProcessLookupError:
        pass
    server.wait()


def fetch(port, keys, timeout=10.0):
    """GET /get for `keys`; returns the decoded JSON answer."""
    query = urllib.parse.urlencode([("key", k) for k in keys])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/get?" + query)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


def audit(answer):
    """What is wrong with an answer of all accounts (empty if nothing)."""
    values = answer["values"]
    if any(values.get(k.decode()) is None for k in KEYS):
        return [f"missing accounts in {values}"]
    balances = [int(values[k.decode()]) for k in KEYS]
    problems = []
    if sum(balances) != TOTAL:
        problems.append(f"snapshot {answer['snapshot_ts']}: sum {sum(balances)} != {TOTAL}")
    if min(balances) < 0:
        problems.append(f"snapshot {answer['snapshot_ts']}: negative balance {balances}")
    return problems


def client(port, requests):
    """Send `requests` requests one after another (all accounts, or one);
    returns the answers in order."""
    rng = random.Random()
    all_keys = [k.decode() for k in KEYS]
    return [
        fetch(port, all_keys if rng.random() < 0.75 else [rng.choice(all_keys)])
        for _ in range(requests)
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database path (default: a temporary one)")
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="for --write-only")
    parser.add_argument("--setup-only", action="store_true", help="create the bank, exit")
    parser.add_argument("--write-only", action="store_true", help="run the writer only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or os.path.join(tmp, "bank.db")
        if args.write_only:
            print(run_transfers(path, seconds=args.seconds), "transfers")
            return
        create_bank(path)
        if args.setup_only:
            return
        port = args.port or free_port()
        ctx = multiprocessing.get_context("spawn")
        stop = ctx.Event()
        # "eventual": many more commits, so a response that mixed two
        # of them would be caught.
        writer = ctx.Process(
            target=run_transfers, args=(path,), kwargs={"stop": stop, "durability": "eventual"}
        )
        writer.start()
        server = start_server(path, port)
        try:
            wait_until_serving(server, port)
            started = time.monotonic()
            per_client = max(1, args.requests // args.clients)
            with ThreadPoolExecutor(args.clients) as pool:
                runs = list(pool.map(client, [port] * args.clients, [per_client] * args.clients))
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            stop_server(server)
            writer.join(10)
            if writer.is_alive():
                writer.kill()
        answers = [a for run in runs for a in run]
        full = [a for a in answers if len(a["values"]) == len(KEYS)]
        problems = [p for a in full for p in audit(a)]
        print(
            f"{len(answers)} requests in {elapsed:.1f} s from {len({a['pid'] for a in answers})}"
            f" workers, {len({a['snapshot_ts'] for a in answers})} distinct snapshots;"
            f" {len(full)} full snapshots audited, {len(problems)} problems"
        )
        for p in problems[:10]:
            print("  ", p)
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
