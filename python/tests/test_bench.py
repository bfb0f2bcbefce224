"""A smoke test of python/bench/bench.py: its --quick mode runs and prints
a complete table. It takes about 20 s on 2 cores; on a machine where it
does not finish within twice QUICK_BUDGET the test is skipped, unless
SCRIBEDB_BENCH=1 asks for it to run to the end."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench.py"
QUICK_BUDGET = 30.0  # seconds; --quick takes about 20 on 2 cores


def test_bench_quick_runs(tmp_path):
    forced = os.environ.get("SCRIBEDB_BENCH") == "1"
    timeout = 600 if forced else 2 * QUICK_BUDGET
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(BENCH), "--quick", "--dir", str(tmp_path / "dbs")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = b"", b""
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the benchmark's own processes too
        except ProcessLookupError:
            pass
        proc.wait()
    elapsed = time.monotonic() - began
    if proc.returncode != 0 and elapsed >= timeout:
        pytest.skip(f"bench.py --quick took over {timeout:.0f} s on this machine; "
                    "SCRIBEDB_BENCH=1 runs it without a budget")
    text = out.decode()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "| workload | scribedb | lmdb | sqlite |" in text
    for row in ("random get, 1 read txn for all", "range scan of 10 entries",
                "batch writes", "single-put commits/s", "MP: gets/s of 4 reader",
                "commit to visible, median", "`r.get(k)`, 1,000 hot keys"):
        assert row in text, row
    table = text.split("## Settings")[0]
    # Every cell has a figure (lmdb's are n/a when it is not installed).
    assert "nan" not in table
