//! Model-based tests: random sequences of operations checked against a
//! `BTreeMap` model, with one model state kept per commit so that old read
//! transactions can be checked against the state at their snapshot.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use scribedb::{Builder, Database, Durability, ReadTxn, RecoveryReport, WriteTxn};

type Key = Vec<u8>;
type Val = Vec<u8>;
type Map = BTreeMap<Key, Val>;
type Kv = (Key, Val);

/// Keys are 1 to 3 bytes of this alphabet, so they collide often and
/// exercise the bytes 0x00 and 0xff at both ends of the order.
const ALPHABET: [u8; 4] = [0x00, 0x01, b'a', 0xff];
/// Read transactions kept open at once.
const MAX_KEPT_READERS: usize = 5;
/// Small arenas, so that the version store chains several of them.
const ARENA_SIZE: usize = 1 << 16;

// ---------------------------------------------------------------------------
// Operations

/// How an iterator is consumed.
#[derive(Clone, Debug)]
enum Order {
    Forward,
    Reverse,
    /// `true` takes from the back; afterwards the rest is taken from the front.
    Mixed(Vec<bool>),
}

#[derive(Clone, Debug)]
enum Query {
    Get(Key),
    All(Order),
    Prefix(Key, Order),
    Range(Bound<Key>, Bound<Key>, Order),
}

#[derive(Clone, Debug)]
enum Op {
    Put(Key, Val),
    Delete(Key),
    Commit,
    Abort,
    /// Query the write transaction (begun if none): its own writes merged
    /// over the stored versions.
    WriteQuery(Query),
    /// Begin a read transaction and keep it; `true` on the second handle
    /// (when it is open).
    BeginRead(bool),
    ReadQuery(usize, Query),
    EndRead(usize),
    /// Open or close a second handle on the database.
    ToggleSecond,
    /// Drop the main handle and its transactions and open it again (the
    /// second handle, if open, and its readers stay).
    Reopen,
    /// Drop everything and open with `repair(true)`, which rebuilds the
    /// version store from the log.
    ReopenRepair,
    /// Drop everything, wipe the shared memory as a reboot would, reopen.
    Reboot,
}

fn key() -> impl Strategy<Value = Key> {
    prop::collection::vec(prop::sample::select(ALPHABET.to_vec()), 1..=3)
}

fn big_value(len: usize, seed: u8) -> Val {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn value() -> impl Strategy<Value = Val> {
    prop_oneof![
        3 => Just(Vec::new()),
        12 => prop::collection::vec(any::<u8>(), 1..8),
        2 => prop::collection::vec(any::<u8>(), 100..400),
        // Bigger than an arena: forces new (and oversized) arenas.
        1 => (20_000usize..70_000, any::<u8>()).prop_map(|(n, s)| big_value(n, s)),
    ]
}

fn bound() -> impl Strategy<Value = Bound<Key>> {
    prop_oneof![
        Just(Bound::Unbounded),
        key().prop_map(Bound::Included),
        key().prop_map(Bound::Excluded),
    ]
}

fn order() -> impl Strategy<Value = Order> {
    prop_oneof![
        Just(Order::Forward),
        Just(Order::Reverse),
        prop::collection::vec(any::<bool>(), 0..10).prop_map(Order::Mixed),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    prop_oneof![
        2 => key().prop_map(Query::Get),
        1 => order().prop_map(Query::All),
        1 => (prop::collection::vec(prop::sample::select(ALPHABET.to_vec()), 0..=2), order())
            .prop_map(|(p, o)| Query::Prefix(p, o)),
        2 => (bound(), bound(), order()).prop_map(|(lo, hi, o)| Query::Range(lo, hi, o)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        12 => key().prop_map(Op::Delete),
        10 => Just(Op::Commit),
        3 => Just(Op::Abort),
        10 => query().prop_map(Op::WriteQuery),
        5 => any::<bool>().prop_map(Op::BeginRead),
        14 => (any::<usize>(), query()).prop_map(|(i, q)| Op::ReadQuery(i, q)),
        2 => any::<usize>().prop_map(Op::EndRead),
        2 => Just(Op::ToggleSecond),
        2 => Just(Op::Reopen),
        1 => Just(Op::ReopenRepair),
        2 => Just(Op::Reboot),
    ]
}

// ---------------------------------------------------------------------------
// Answers

fn in_bounds(k: &[u8], lo: &Bound<Key>, hi: &Bound<Key>) -> bool {
    let above = match lo {
        Bound::Included(l) => k >= l.as_slice(),
        Bound::Excluded(l) => k > l.as_slice(),
        Bound::Unbounded => true,
    };
    let below = match hi {
        Bound::Included(h) => k <= h.as_slice(),
        Bound::Excluded(h) => k < h.as_slice(),
        Bound::Unbounded => true,
    };
    above && below
}

/// What a query answers: the value of a get, or every step of an iteration.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Value(Option<Val>),
    Steps(Vec<Option<Kv>>),
}

/// Consume `it` in `order`, recording every step, including the `None` at
/// the end and one call at the other end after that.
fn drive(
    mut it: impl DoubleEndedIterator<Item = Kv>,
    order: &Order,
    limit: usize,
) -> Vec<Option<Kv>> {
    let mut out = Vec::new();
    let take = |x: Option<Kv>, out: &mut Vec<Option<Kv>>| {
        let end = x.is_none();
        out.push(x);
        end || out.len() > limit
    };
    match order {
        Order::Forward => while !take(it.next(), &mut out) {},
        Order::Reverse => while !take(it.next_back(), &mut out) {},
        Order::Mixed(pattern) => {
            for &back in pattern {
                let x = if back { it.next_back() } else { it.next() };
                out.push(x);
            }
            while !take(it.next(), &mut out) {}
            out.push(it.next_back());
        }
    }
    out
}

fn order_of(q: &Query) -> &Order {
    match q {
        Query::Get(_) => unreachable!(),
        Query::All(o) | Query::Prefix(_, o) | Query::Range(_, _, o) => o,
    }
}

/// The model's answer.
fn expected(model: &Map, q: &Query) -> Answer {
    let items: Vec<Kv> = match q {
        Query::Get(k) => return Answer::Value(model.get(k).cloned()),
        Query::All(_) => model.clone().into_iter().collect(),
        Query::Prefix(p, _) => model
            .iter()
            .filter(|(k, _)| k.starts_with(p))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Query::Range(lo, hi, _) => model
            .iter()
            .filter(|(k, _)| in_bounds(k, lo, hi))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let limit = items.len() + 16;
    Answer::Steps(drive(items.into_iter(), order_of(q), limit))
}

fn owned<'a>(r: scribedb::Result<(&'a [u8], &'a [u8])>) -> Kv {
    let (k, v) = r.expect("iterator yielded an error");
    (k.to_vec(), v.to_vec())
}

/// A read transaction's answer. `limit` stops a runaway iterator.
fn read_answer(txn: &ReadTxn, q: &Query, limit: usize) -> scribedb::Result<Answer> {
    Ok(match q {
        Query::Get(k) => Answer::Value(txn.get(k)?.map(<[u8]>::to_vec)),
        Query::All(o) => Answer::Steps(drive(txn.iter().map(owned), o, limit)),
        Query::Prefix(p, o) => Answer::Steps(drive(txn.prefix(p).map(owned), o, limit)),
        Query::Range(lo, hi, o) => Answer::Steps(drive(
            txn.range::<Key, _>((lo.clone(), hi.clone())).map(owned),
            o,
            limit,
        )),
    })
}

/// A write transaction's answer.
fn write_answer(txn: &WriteTxn, q: &Query, limit: usize) -> scribedb::Result<Answer> {
    Ok(match q {
        Query::Get(k) => Answer::Value(txn.get(k)?.map(<[u8]>::to_vec)),
        Query::All(o) => Answer::Steps(drive(txn.iter().map(owned), o, limit)),
        Query::Prefix(p, o) => Answer::Steps(drive(txn.prefix(p).map(owned), o, limit)),
        Query::Range(lo, hi, o) => Answer::Steps(drive(
            txn.range::<Key, _>((lo.clone(), hi.clone())).map(owned),
            o,
            limit,
        )),
    })
}

// ---------------------------------------------------------------------------
// The system under test next to its model

fn ok<T>(r: scribedb::Result<T>, what: &str) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))
}

/// Which handle a read transaction was begun on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum On {
    Main,
    Second,
}

struct Harness {
    // Transactions and the handles go before the directory.
    readers: Vec<(ReadTxn, Rc<Map>, On)>,
    writer: Option<(WriteTxn, BTreeMap<Key, Option<Val>>)>,
    db: Option<Database>,
    second: Option<Database>,
    builder: Builder,
    /// State after each commit, by commit timestamp (0: the empty database).
    states: BTreeMap<u64, Rc<Map>>,
    committed: Map,
    last_ts: u64,
    /// Commits with at least one write: records in the log.
    records: u64,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new(durability: Durability) -> Result<Harness, TestCaseError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let builder = Database::builder()
            .durability(durability)
            .arena_size(ARENA_SIZE);
        let db = ok(builder.clone().open(dir.path()), "open")?;
        // The log is small here: keep it from growing to its usual
        // preallocation so that rebuilds (which scan it whole) stay fast.
        common::presize_wal(dir.path(), 1 << 20);
        Ok(Harness {
            readers: Vec::new(),
            writer: None,
            db: Some(db),
            second: None,
            builder,
            states: BTreeMap::from([(0, Rc::new(Map::new()))]),
            committed: Map::new(),
            last_ts: 0,
            records: 0,
            dir,
        })
    }

    fn db(&self) -> &Database {
        self.db.as_ref().expect("database is open")
    }

    /// The write transaction, begun if there is none.
    fn writer(&mut self) -> Result<&mut (WriteTxn, BTreeMap<Key, Option<Val>>), TestCaseError> {
        if self.writer.is_none() {
            let w = ok(self.db().begin_write(), "begin_write")?;
            prop_assert_eq!(w.snapshot_ts(), self.last_ts, "writer snapshot");
            self.writer = Some((w, BTreeMap::new()));
        }
        Ok(self.writer.as_mut().unwrap())
    }

    /// Committed state overlaid with the write transaction's buffer.
    fn pending_view(&self) -> Map {
        let mut view = self.committed.clone();
        if let Some((_, buf)) = &self.writer {
            for (k, v) in buf {
                match v {
                    Some(v) => view.insert(k.clone(), v.clone()),
                    None => view.remove(k),
                };
            }
        }
        view
    }

    fn reopen(&mut self, how: &Op) -> Result<(), TestCaseError> {
        self.writer = None;
        if matches!(how, Op::Reopen) {
            self.readers.retain(|(_, _, on)| *on == On::Second);
        } else {
            self.readers.clear();
            self.second = None;
        }
        self.db = None;
        if matches!(how, Op::Reboot) {
            common::simulate_reboot(self.dir.path());
        }
        let repair = matches!(how, Op::ReopenRepair);
        let db = ok(
            self.builder.clone().repair(repair).open(self.dir.path()),
            "reopen",
        )?;
        let report = db.recovery_report().clone();
        if matches!(how, Op::Reboot | Op::ReopenRepair) {
            prop_assert_eq!(report.records, self.records, "records replayed");
            prop_assert_eq!(report.last_ts, self.last_ts, "last replayed ts");
            prop_assert_eq!(report.torn_tail, None);
            prop_assert_eq!(report.repaired, None);
        } else {
            prop_assert_eq!(report, RecoveryReport::default(), "reuse does not recover");
        }
        prop_assert_eq!(db.committed_ts(), self.last_ts, "committed ts after reopen");
        let r = ok(db.begin_read(), "begin_read")?;
        prop_assert_eq!(r.snapshot_ts(), self.last_ts);
        let got = read_answer(&r, &Query::All(Order::Forward), self.committed.len() + 16);
        let want = expected(&self.committed, &Query::All(Order::Forward));
        prop_assert_eq!(ok(got, "scan after reopen")?, want, "contents after reopen");
        drop(r);
        self.db = Some(db);
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Put(k, v) => {
                let (w, buf) = self.writer()?;
                ok(w.put(k, v), "put")?;
                buf.insert(k.clone(), Some(v.clone()));
                prop_assert_eq!(ok(w.get(k), "get own put")?, Some(&v[..]));
            }
            Op::Delete(k) => {
                let (w, buf) = self.writer()?;
                ok(w.delete(k), "delete")?;
                buf.insert(k.clone(), None);
                prop_assert_eq!(ok(w.get(k), "get own delete")?, None);
            }
            Op::Commit => {
                let Some((w, buf)) = self.writer.take() else {
                    let w = ok(self.db().begin_write(), "begin_write")?;
                    let ts = ok(w.commit(), "empty commit")?;
                    prop_assert_eq!(ts, self.last_ts, "empty commit returns the snapshot");
                    return Ok(());
                };
                let ts = ok(w.commit(), "commit")?;
                if buf.is_empty() {
                    prop_assert_eq!(ts, self.last_ts, "empty commit returns the snapshot");
                    return Ok(());
                }
                prop_assert!(ts > self.last_ts, "commit ts {} after {}", ts, self.last_ts);
                for (k, v) in buf {
                    match v {
                        Some(v) => self.committed.insert(k, v),
                        None => self.committed.remove(&k),
                    };
                }
                self.last_ts = ts;
                self.records += 1;
                self.states.insert(ts, Rc::new(self.committed.clone()));
                prop_assert_eq!(self.db().committed_ts(), ts, "published at once");
            }
            Op::Abort => {
                if let Some((w, _)) = self.writer.take() {
                    w.abort();
                }
            }
            Op::WriteQuery(q) => {
                let view = self.pending_view();
                let limit = view.len() + 16;
                let (w, _) = self.writer()?;
                let got = ok(write_answer(w, q, limit), "write txn query")?;
                prop_assert_eq!(got, expected(&view, q), "write txn query {:?}", q);
            }
            Op::BeginRead(second) => {
                if self.readers.len() >= MAX_KEPT_READERS {
                    self.readers.remove(0);
                }
                let (db, on) = match (&self.second, second) {
                    (Some(db), true) => (db, On::Second),
                    _ => (self.db(), On::Main),
                };
                let r = ok(db.begin_read(), "begin_read")?;
                prop_assert_eq!(r.snapshot_ts(), self.last_ts, "reader snapshot");
                let Some(state) = self.states.get(&r.snapshot_ts()) else {
                    return Err(TestCaseError::fail(format!(
                        "snapshot {} is no commit",
                        r.snapshot_ts()
                    )));
                };
                let state = state.clone();
                self.readers.push((r, state, on));
            }
            Op::ReadQuery(i, q) => {
                if self.readers.is_empty() {
                    return Ok(());
                }
                let (r, state, _) = &self.readers[i % self.readers.len()];
                let got = ok(read_answer(r, q, state.len() + 16), "read txn query")?;
                prop_assert_eq!(
                    got,
                    expected(state, q),
                    "read txn at {} query {:?}",
                    r.snapshot_ts(),
                    q
                );
            }
            Op::EndRead(i) => {
                if !self.readers.is_empty() {
                    let n = self.readers.len();
                    self.readers.remove(i % n);
                }
            }
            Op::ToggleSecond => {
                if self.second.take().is_none() {
                    let db = ok(self.builder.clone().open(self.dir.path()), "second open")?;
                    prop_assert_eq!(db.recovery_report(), &RecoveryReport::default());
                    prop_assert_eq!(db.committed_ts(), self.last_ts);
                    self.second = Some(db);
                } else {
                    self.readers.retain(|(_, _, on)| *on == On::Main);
                }
            }
            Op::Reopen | Op::ReopenRepair | Op::Reboot => self.reopen(op)?,
        }
        Ok(())
    }
}

fn durability() -> impl Strategy<Value = Durability> {
    prop_oneof![
        4 => Just(Durability::Immediate),
        1 => Just(Durability::Eventual),
        1 => Just(Durability::None),
    ]
}

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        max_shrink_iters: 4096,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn matches_the_model(
        durability in durability(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut h = Harness::new(durability)?;
        for op in &ops {
            h.step(op)?;
        }
        // Whatever happened, a last reboot gives back the committed state.
        if let Some((w, _)) = h.writer.take() {
            w.abort();
        }
        h.reopen(&Op::Reboot)?;
    }
}

// ---------------------------------------------------------------------------
// Deterministic checks of the iterators

fn put_all(db: &Database, writes: &[(&[u8], Option<&[u8]>)]) -> u64 {
    let mut w = db.begin_write().unwrap();
    for (k, v) in writes {
        match v {
            Some(v) => w.put(k, v).unwrap(),
            None => w.delete(k).unwrap(),
        }
    }
    w.commit().unwrap()
}

fn pairs(items: &[(&[u8], &[u8])]) -> Vec<Kv> {
    items
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

#[test]
fn write_txn_reads_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    put_all(
        &db,
        &[
            (b"a", Some(b"a0")),
            (b"b", Some(b"b0")),
            (b"c", Some(b"c0")),
            (b"d", Some(b"d0")),
            (b"e", Some(b"e0")),
        ],
    );
    put_all(&db, &[(b"c", None), (b"f", Some(b"f1"))]);

    let mut w = db.begin_write().unwrap();
    w.delete(b"a").unwrap(); // stored key deleted in the buffer
    w.put(b"b", b"b2").unwrap(); // stored key overwritten
    w.put(b"c", b"").unwrap(); // key deleted in storage, back with an empty value
    w.put(b"bb", b"new").unwrap(); // new key between stored ones
    w.delete(b"zz").unwrap(); // delete of a key that never existed
    w.put(b"g", b"g2").unwrap();
    w.delete(b"g").unwrap(); // put then delete in the same buffer
    w.put(b"f", b"f2").unwrap();
    w.put(b"f", b"f3").unwrap(); // last write wins

    assert_eq!(w.get(b"a").unwrap(), None);
    assert_eq!(w.get(b"b").unwrap(), Some(&b"b2"[..]));
    assert_eq!(w.get(b"c").unwrap(), Some(&b""[..]));
    assert_eq!(w.get(b"d").unwrap(), Some(&b"d0"[..]));
    assert_eq!(w.get(b"g").unwrap(), None);
    assert_eq!(w.get(b"zz").unwrap(), None);
    assert_eq!(w.get(b"f").unwrap(), Some(&b"f3"[..]));

    let all = pairs(&[
        (b"b", b"b2"),
        (b"bb", b"new"),
        (b"c", b""),
        (b"d", b"d0"),
        (b"e", b"e0"),
        (b"f", b"f3"),
    ]);
    let fwd: Vec<Kv> = w.iter().map(owned).collect();
    assert_eq!(fwd, all);
    let rev: Vec<Kv> = w.iter().rev().map(owned).collect();
    assert_eq!(rev, all.iter().rev().cloned().collect::<Vec<_>>());

    let mid: Vec<Kv> = w.range(&b"a"[..]..&b"e"[..]).map(owned).collect();
    assert_eq!(mid, all[..4].to_vec());
    let mid_rev: Vec<Kv> = w.range(&b"b"[..]..=&b"d"[..]).rev().map(owned).collect();
    assert_eq!(mid_rev, all[..4].iter().rev().cloned().collect::<Vec<_>>());
    let excl: Vec<Kv> = w
        .range::<&[u8], _>((Bound::Excluded(&b"b"[..]), Bound::Excluded(&b"f"[..])))
        .map(owned)
        .collect();
    assert_eq!(excl, all[1..5].to_vec());
    let tail: Vec<Kv> = w.range(&b"c\0"[..]..).rev().map(owned).collect();
    assert_eq!(tail, all[3..].iter().rev().cloned().collect::<Vec<_>>());
    let pre: Vec<Kv> = w.prefix(b"b").map(owned).collect();
    assert_eq!(pre, all[..2].to_vec());
    let pre_rev: Vec<Kv> = w.prefix(b"b").rev().map(owned).collect();
    assert_eq!(pre_rev, vec![all[1].clone(), all[0].clone()]);
    assert_eq!(w.prefix(b"a").count(), 0, "deleted in the buffer");
    assert_eq!(w.prefix(b"g").count(), 0, "put then deleted in the buffer");
    assert_eq!(w.range(&b"x"[..]..&b"a"[..]).count(), 0, "inverted range");

    // Readers see none of it, before and after an abort.
    let r = db.begin_read().unwrap();
    assert_eq!(r.get(b"a").unwrap(), Some(&b"a0"[..]));
    assert_eq!(r.get(b"bb").unwrap(), None);
    w.abort();
    assert_eq!(
        db.begin_read().unwrap().get(b"b").unwrap(),
        Some(&b"b0"[..])
    );
    drop(r);
}

/// Every way of interleaving `next` and `next_back` on one iterator, for a
/// read transaction and for a write transaction with buffered writes.
#[test]
fn double_ended_all_interleavings() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder()
        .durability(Durability::None)
        .open(dir.path())
        .unwrap();
    // Several versions per key, deletes, and keys at the ends of the order.
    put_all(
        &db,
        &[
            (b"\x00", Some(b"0")),
            (b"b", Some(b"b")),
            (b"c", Some(b"c")),
            (b"d", Some(b"d")),
            (b"e", Some(b"e")),
            (b"\xff", Some(b"f")),
        ],
    );
    put_all(
        &db,
        &[(b"c", None), (b"d", Some(b"d2")), (b"ca", Some(b""))],
    );
    let old = db.begin_read().unwrap();
    let old_state: Map = common::contents(&old);
    put_all(
        &db,
        &[(b"e", None), (b"b", Some(b"b3")), (b"cb", Some(b"x"))],
    );

    let mut w = db.begin_write().unwrap();
    w.put(b"a", b"a").unwrap();
    w.delete(b"ca").unwrap();
    w.put(b"d", b"d9").unwrap();
    w.put(b"dd", b"dd").unwrap();
    let mut view: Map = common::db_contents(&db);
    view.insert(b"a".to_vec(), b"a".to_vec());
    view.remove(&b"ca"[..]);
    view.insert(b"d".to_vec(), b"d9".to_vec());
    view.insert(b"dd".to_vec(), b"dd".to_vec());

    let ranges: Vec<(Bound<Key>, Bound<Key>)> = vec![
        (Bound::Unbounded, Bound::Unbounded),
        (
            Bound::Included(b"b".to_vec()),
            Bound::Excluded(b"e".to_vec()),
        ),
        (
            Bound::Excluded(b"b".to_vec()),
            Bound::Included(b"d".to_vec()),
        ),
        (Bound::Excluded(b"c".to_vec()), Bound::Unbounded),
    ];
    let mut checked = 0;
    for (lo, hi) in &ranges {
        let q = |o: Order| Query::Range(lo.clone(), hi.clone(), o);
        for len in 0..=9u32 {
            for bits in 0..(1u32 << len) {
                let pattern: Vec<bool> = (0..len).map(|i| bits >> i & 1 == 1).collect();
                let query = q(Order::Mixed(pattern));
                let got = read_answer(&old, &query, 64).unwrap();
                assert_eq!(got, expected(&old_state, &query), "old reader {query:?}");
                let got = write_answer(&w, &query, 64).unwrap();
                assert_eq!(got, expected(&view, &query), "write txn {query:?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 1000);
    w.abort();
}
