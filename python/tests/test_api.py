"""The Python API in one process: transactions, reads, scans, zero-copy
views, reads of the past, errors and what bad input gets."""

import datetime
import gc
import threading
import time

import pytest

import scribedb


@pytest.fixture
def db(tmp_path):
    d = scribedb.open(tmp_path / "db", durability="none")
    yield d
    d.close()


def test_write_block_commits_and_reads_its_own_writes(db):
    with db.write() as w:
        w.put(b"user:1", b"alice")
        w.put(b"user:2", b"bob")
        w.delete(b"user:2")
        assert w.get(b"user:1") == b"alice"
        assert w.get(b"user:2") is None
        assert list(w.prefix(b"user:")) == [(b"user:1", b"alice")]
        assert w.commit_ts is None
    assert w.commit_ts is not None and w.commit_ts > 0
    assert w.closed
    with db.read() as r:
        assert r.get(b"user:1") == b"alice"
        assert r.get(b"user:2") is None
        assert r.snapshot_ts == w.commit_ts
    assert db.committed_ts == w.commit_ts


def test_a_block_that_raises_aborts_and_reraises(db):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with db.write() as w:
            w.put(b"k", b"v")
            raise Boom()
    assert w.closed and w.commit_ts is None
    assert db.read().get(b"k") is None
    # The writer role was given back.
    with db.write() as w:
        w.put(b"k", b"v2")
    assert db.read().get(b"k") == b"v2"


def test_keyboard_interrupt_inside_a_write_block_aborts_it(db):
    with pytest.raises(KeyboardInterrupt):
        with db.write() as w:
            w.put(b"k", b"v")
            raise KeyboardInterrupt
    assert db.read().get(b"k") is None
    with db.write() as w:
        w.put(b"after", b"yes")
    assert db.read().get(b"after") == b"yes"


def test_explicit_commit_and_abort(db):
    w = db.write()
    w.put(b"a", b"1")
    ts = w.commit()
    assert w.commit_ts == ts
    with pytest.raises(scribedb.Closed):
        w.put(b"b", b"2")
    with pytest.raises(scribedb.Closed):
        w.commit()
    w = db.write()
    w.put(b"b", b"2")
    w.abort()
    w.abort()  # twice is nothing
    assert db.read().get(b"b") is None


def test_snapshots_are_isolated(db):
    with db.write() as w:
        w.put(b"k", b"old")
    r = db.read()
    with db.write() as w:
        w.put(b"k", b"new")
    assert r.get(b"k") == b"old"
    assert db.read().get(b"k") == b"new"
    r.close()
    assert r.closed
    with pytest.raises(scribedb.Closed):
        r.get(b"k")


def test_range_prefix_and_reverse(db):
    with db.write() as w:
        for i in range(100):
            w.put(b"k%03d" % i, b"v%d" % i)
        w.put(b"other", b"x")
    with db.read() as r:
        got = list(r.range(b"k010", b"k020"))
        assert got == [(b"k%03d" % i, b"v%d" % i) for i in range(10, 20)]
        back = list(r.range(b"k010", b"k020", reverse=True))
        assert back == got[::-1]
        assert len(list(r.prefix(b"k"))) == 100
        assert [k for k, _ in r.prefix(b"k09", reverse=True)] == [
            b"k%03d" % i for i in range(99, 89, -1)
        ]
        assert len(list(r)) == 101
        assert list(r.range(start=b"other")) == [(b"other", b"x")]
        assert list(r.range(end=b"k001")) == [(b"k000", b"v0")]
    # A write transaction's range, across its batches, sees its writes.
    with db.write() as w:
        for i in range(1000):
            w.put(b"w%04d" % i, b"%d" % i)
        w.delete(b"w0500")
        keys = [k for k, _ in w.prefix(b"w")]
        assert len(keys) == 999 and keys == sorted(keys)
        assert b"w0500" not in keys
        rev = [k for k, _ in w.prefix(b"w", reverse=True)]
        assert rev == keys[::-1]


def test_an_iterator_outlives_close(db):
    with db.write() as w:
        w.put(b"a", b"1")
        w.put(b"b", b"2")
    r = db.read()
    it = r.range()
    r.close()
    assert list(it) == [(b"a", b"1"), (b"b", b"2")]


def test_get_view_is_zero_copy_and_keeps_its_snapshot(db):
    big = bytes(range(256)) * 64
    with db.write() as w:
        w.put(b"big", big)
        w.put(b"empty", b"")
    r = db.read()
    view = r.get_view(b"big")
    assert isinstance(view, memoryview) and view.readonly
    assert view.nbytes == len(big) and view.format == "B"
    assert bytes(view) == big
    part = view[100:200]
    assert r.get_view(b"missing") is None
    assert bytes(r.get_view(b"empty")) == b""
    with pytest.raises(TypeError):
        view[0] = 1
    # The snapshot stays registered while a view or a slice of one lives.
    r.close()
    del view
    gc.collect()
    assert len(db.readers()) == 1
    # Overwrite and compact: the slice must still show the old bytes.
    with db.write() as w:
        w.put(b"big", b"replaced")
    db.compact()
    assert bytes(part) == big[100:200]
    del part
    gc.collect()
    assert db.readers() == []


def test_bytes_like_keys_and_str_refused(db):
    with db.write() as w:
        w.put(bytearray(b"ba"), memoryview(b"mv"))
        w.put(memoryview(b"xmvx")[1:3], b"sliced")
        with pytest.raises(TypeError, match="bytes, bytearray or memoryview, not str"):
            w.put("text", b"v")
        with pytest.raises(TypeError):
            w.put(b"k", "text")
        with pytest.raises(TypeError):
            w.put(b"k", 5)
        with pytest.raises(TypeError):
            w.get("text")
    with db.read() as r:
        assert r.get(b"ba") == b"mv"
        assert r.get(b"mv") == b"sliced"
        assert r.get(bytearray(b"ba")) == b"mv"
        with pytest.raises(TypeError):
            r.get("ba")
        assert r.get(b"k") is None


def test_empty_and_oversized_keys_and_values(db):
    with db.write() as w:
        with pytest.raises(scribedb.KeyTooLarge) as e:
            w.put(b"", b"v")
        assert e.value.len == 0 and e.value.max == scribedb.MAX_KEY_LEN
        with pytest.raises(scribedb.KeyTooLarge) as e:
            w.put(b"k" * (scribedb.MAX_KEY_LEN + 1), b"v")
        assert e.value.len == scribedb.MAX_KEY_LEN + 1
        assert isinstance(e.value, scribedb.Error)
        w.put(b"k" * scribedb.MAX_KEY_LEN, b"longest key")
        w.put(b"ok", b"")
    with db.read() as r:
        assert r.get(b"k" * scribedb.MAX_KEY_LEN) == b"longest key"
        assert r.get(b"ok") == b""
        with pytest.raises(scribedb.KeyTooLarge):
            r.get(b"")


def test_writer_busy_carries_its_holder(tmp_path):
    path = tmp_path / "db"
    a = scribedb.open(path, writer_timeout=0.05)
    b = scribedb.open(path, writer_timeout=0.05)
    w = a.write()
    with pytest.raises(scribedb.WriterBusy) as e:
        b.write()
    assert "pid" in e.value.holder
    w.abort()
    b.write().abort()


def test_readers_full(tmp_path):
    db = scribedb.open(tmp_path / "db", max_readers=4)
    held = [db.read() for _ in range(4)]
    with pytest.raises(scribedb.ReadersFull) as e:
        db.read()
    assert e.value.max == 4
    held[0].close()
    db.read().close()


def test_invalid_options(tmp_path):
    with pytest.raises(ValueError, match="durability"):
        scribedb.open(tmp_path / "a", durability="sometimes")
    with pytest.raises(scribedb.InvalidOption) as e:
        scribedb.open(tmp_path / "b", max_readers=0)
    assert e.value.option
    with pytest.raises(ValueError):
        scribedb.open(tmp_path / "c", writer_timeout=-1)


def test_not_a_database(tmp_path):
    with pytest.raises(scribedb.NotADatabase):
        scribedb.open(tmp_path / "missing", create=False)


def test_reads_of_the_past(tmp_path):
    db = scribedb.open(tmp_path / "db", durability="none", retention=3600)
    with db.write() as w:
        w.put(b"k", b"one")
    first = w.commit_ts
    moment = datetime.datetime.now()
    time.sleep(0.01)
    with db.write() as w:
        w.put(b"k", b"two")
    assert db.read_at(first).get(b"k") == b"one"
    assert db.read().get(b"k") == b"two"
    assert db.read_as_of(moment).get(b"k") == b"one"
    assert db.read_as_of(0).get(b"k") == b"two"
    assert db.read_as_of(datetime.timedelta(seconds=0)).get(b"k") == b"two"
    assert db.read_as_of(3000).get(b"k") is None
    with db.read() as r:
        assert [v for _, v in r.versions(b"k")] == [b"two", b"one"]
    with pytest.raises(TypeError):
        db.read_as_of("yesterday")


def test_history_unavailable_without_retention(db):
    with db.write() as w:
        w.put(b"k", b"one")
    first = w.commit_ts
    for i in range(3):
        with db.write() as w:
            w.put(b"k", b"%d" % i)
    db.compact()
    with pytest.raises(scribedb.HistoryUnavailable) as e:
        db.read_at(first)
    assert e.value.requested == first and e.value.oldest > first


def test_stats_readers_check_compact_and_close(tmp_path):
    db = scribedb.open(tmp_path / "db", durability="eventual")
    with db.write() as w:
        w.put_many((b"k%d" % i, b"v") for i in range(50))
    r = db.read()
    readers = db.readers()
    assert len(readers) == 1 and readers[0]["live"] and readers[0]["snapshot"] == r.snapshot_ts
    r.close()
    stats = db.stats()
    assert stats["keys"] == 50 and stats["processes"] == 1
    db.compact()
    assert db.stats()["segments"] >= 1
    report = db.check()
    assert report["ok"] and report["problems"] == [] and report["segments"] >= 1
    db.sync()
    assert db.recovery_report()["torn_tail"] is None
    assert db.recovery_report()["coord_rebuilt"] is None
    assert db.writer() is None
    with db:
        pass
    assert db.closed
    with pytest.raises(scribedb.Closed):
        db.read()


def test_a_damaged_coordination_file_is_rebuilt_and_reported(tmp_path):
    path = tmp_path / "db"
    with scribedb.open(path) as db:
        with db.write() as w:
            w.put(b"k", b"v")
    coord = path / "coord"
    data = bytearray(coord.read_bytes())
    data[0] ^= 1
    coord.write_bytes(bytes(data))
    with scribedb.open(path) as db:
        why = db.recovery_report()["coord_rebuilt"]
        assert why is not None and "coordination" in why
        with db.read() as r:
            assert r.get(b"k") == b"v"


def test_a_write_block_with_no_writes_commits_nothing(db):
    with db.write() as w:
        w.put(b"k", b"v")
    before = db.committed_ts
    with db.write() as w:
        assert w.get(b"k") == b"v"
    assert w.commit_ts == w.snapshot_ts == before
    assert db.committed_ts == before
    assert db.wait_for_commit(before, timeout=0.05) is None


def test_wait_for_commit_in_a_thread(db):
    with db.write() as w:
        w.put(b"k", b"0")
    seen = w.commit_ts
    assert db.wait_for_commit(seen, timeout=0.05) is None
    assert db.wait_for_commit(0, timeout=0) == seen
    got = []
    t = threading.Thread(target=lambda: got.append(db.wait_for_commit(seen, timeout=20)))
    t.start()
    time.sleep(0.05)
    with db.write() as w:
        w.put(b"k", b"1")
    t.join(20)
    assert got == [w.commit_ts]


def test_commits_release_the_gil(tmp_path):
    # While one thread waits for the writer role (held by another handle),
    # another Python thread keeps running.
    path = tmp_path / "db"
    a = scribedb.open(path)
    b = scribedb.open(path, writer_timeout=1.0)
    held = a.write()
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    before = len(ticks)
    with pytest.raises(scribedb.WriterBusy):
        b.write()
    stop.set()
    t.join()
    held.abort()
    assert len(ticks) - before > 50, "the other thread did not run while waiting"


def test_reopen_keeps_everything(tmp_path):
    path = tmp_path / "db"
    db = scribedb.open(path)
    with db.write() as w:
        for i in range(1000):
            w.put(b"%05d" % i, b"x" * (i % 300))
    db.close()
    db = scribedb.open(path)
    with db.read() as r:
        assert sum(1 for _ in r) == 1000
        assert r.get(b"00999") == b"x" * (999 % 300)


def test_exceptions_pickle_with_their_fields(db):
    import pickle

    # A multiprocessing worker's exception travels back to its parent
    # pickled.
    with pytest.raises(scribedb.KeyTooLarge) as e:
        with db.write() as w:
            w.put(b"", b"v")
    back = pickle.loads(pickle.dumps(e.value))
    assert type(back) is scribedb.KeyTooLarge
    assert (back.len, back.max) == (0, scribedb.MAX_KEY_LEN)
    assert str(back) == str(e.value)


def test_verify_every_read_catches_a_segment_changed_in_place(tmp_path):
    path = tmp_path / "db"
    value = lambda i: b"value %05d " % i + b"x" * 120
    with scribedb.open(path) as db:
        with db.write() as w:
            w.put_many((b"key%05d" % i, value(i)) for i in range(2000))
        db.compact()
    db = scribedb.open(path, verify_every_read=True)
    r = db.read()
    assert r.get(b"key01000") == value(1000)
    (seg,) = [p for p in path.iterdir() if p.suffix == ".seg"]
    data = seg.read_bytes()
    at = data.index(b"value 01000")
    with open(seg, "r+b") as f:
        f.seek(at)
        f.write(b"V")
    with pytest.raises(scribedb.Corrupted) as e:
        r.get(b"key01000")
    assert seg.name in str(e.value)
    assert r.get(b"key00000") == value(0)
    r.close()
    db.close()
