use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::entry::Kind;
use crate::error::Error;

/// (key, newest first) → (kind, value)
type Model = BTreeMap<(Vec<u8>, Reverse<u64>), (Kind, Vec<u8>)>;
type Item = (Vec<u8>, Option<Vec<u8>>);

fn write(path: &Path, model: &Model) -> SegmentMeta {
    let mut w = SegmentWriter::create(path).unwrap();
    for ((key, Reverse(ts)), (kind, value)) in model {
        w.add(key, *ts, *kind, value).unwrap();
    }
    assert_eq!(w.entries(), model.len() as u64);
    let bytes = w.bytes();
    let meta = w.finish().unwrap();
    assert!(meta.size > bytes);
    meta
}

fn random_model(rng: &mut StdRng, keys: usize, max_versions: usize, max_value: usize) -> Model {
    let mut model = Model::new();
    let alphabet = [0u8, b'a', b'b', b'c', 0xff];
    for _ in 0..keys {
        let len = rng.random_range(1..10);
        let key: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        for _ in 0..rng.random_range(1..=max_versions) {
            let ts = rng.random_range(1..1000);
            let entry = if rng.random_bool(0.2) {
                (Kind::Delete, Vec::new())
            } else {
                let n = if rng.random_bool(0.1) {
                    0
                } else {
                    rng.random_range(0..=max_value)
                };
                (Kind::Put, (0..n).map(|_| rng.random()).collect())
            };
            model.insert((key.clone(), Reverse(ts)), entry);
        }
    }
    model
}

fn model_get(model: &Model, key: &[u8], snapshot: u64) -> Option<(u64, Kind, Vec<u8>)> {
    model
        .range((key.to_vec(), Reverse(snapshot))..)
        .next()
        .filter(|((k, _), _)| k == key)
        .map(|((_, Reverse(ts)), (kind, value))| (*ts, *kind, value.clone()))
}

fn in_bounds(key: &[u8], lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> bool {
    let above = match lower {
        Bound::Included(l) => key >= l.as_slice(),
        Bound::Excluded(l) => key > l.as_slice(),
        Bound::Unbounded => true,
    };
    let below = match upper {
        Bound::Included(u) => key <= u.as_slice(),
        Bound::Excluded(u) => key < u.as_slice(),
        Bound::Unbounded => true,
    };
    above && below
}

fn model_visible(
    model: &Model,
    snapshot: u64,
    lower: &Bound<Vec<u8>>,
    upper: &Bound<Vec<u8>>,
) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    let mut last: Option<&Vec<u8>> = None;
    for ((key, Reverse(ts)), (kind, value)) in model {
        if !in_bounds(key, lower, upper) || *ts > snapshot || last == Some(key) {
            continue;
        }
        last = Some(key);
        out.push((key.clone(), (*kind == Kind::Put).then(|| value.clone())));
    }
    out
}

fn owned(item: (&[u8], Option<&[u8]>)) -> Item {
    (item.0.to_vec(), item.1.map(<[u8]>::to_vec))
}

fn random_key(rng: &mut StdRng, model: &Model) -> Vec<u8> {
    if rng.random_bool(0.5) && !model.is_empty() {
        let i = rng.random_range(0..model.len());
        model.keys().nth(i).unwrap().0.clone()
    } else {
        let len = rng.random_range(0..6);
        (0..len)
            .map(|_| [0u8, b'a', b'b', b'c', 0xff][rng.random_range(0..5)])
            .collect()
    }
}

fn random_bound(rng: &mut StdRng, model: &Model) -> Bound<Vec<u8>> {
    match rng.random_range(0..3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(random_key(rng, model)),
        _ => Bound::Excluded(random_key(rng, model)),
    }
}

fn expected_meta(model: &Model, size: u64) -> SegmentMeta {
    let mut meta = SegmentMeta {
        size,
        entries: model.len() as u64,
        keys: 0,
        tombstones: 0,
        min_ts: model.keys().map(|k| k.1 .0).min().unwrap_or(0),
        max_ts: model.keys().map(|k| k.1 .0).max().unwrap_or(0),
        first_key: model.keys().next().map(|k| k.0.clone()).unwrap_or_default(),
        last_key: model.keys().last().map(|k| k.0.clone()).unwrap_or_default(),
        newest_put_bytes: 0,
    };
    let mut last: Option<&Vec<u8>> = None;
    for ((key, _), (kind, value)) in model {
        if *kind == Kind::Delete {
            meta.tombstones += 1;
        }
        if last != Some(key) {
            meta.keys += 1;
            if *kind == Kind::Put {
                meta.newest_put_bytes += (key.len() + value.len()) as u64;
            }
        }
        last = Some(key);
    }
    meta
}

#[test]
fn segment_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Segment>();
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.seg");
    let mut rng = StdRng::seed_from_u64(0x5e6);
    let model = random_model(&mut rng, 900, 6, 300);
    assert!(model.len() > 2000);
    let meta = write(&path, &model);
    let seg = Segment::open(&path, Verify::Once).unwrap();
    assert_eq!(seg.path(), path);
    assert_eq!(seg.meta(), &meta);
    assert_eq!(
        meta,
        expected_meta(&model, std::fs::metadata(&path).unwrap().len())
    );
    assert_eq!(seg.len(), model.len());

    // Every entry, in order.
    for (i, ((key, Reverse(ts)), (kind, value))) in model.iter().enumerate() {
        let v = seg.entry(i).unwrap();
        assert_eq!(
            (v.key, v.ts, v.kind, v.value),
            (&key[..], *ts, *kind, &value[..])
        );
    }
    assert!(seg.entry(model.len()).is_err());

    // Point reads.
    for _ in 0..3000 {
        let key = random_key(&mut rng, &model);
        let snapshot = match rng.random_range(0..4) {
            0 => u64::MAX,
            1 => 0,
            _ => rng.random_range(0..1001),
        };
        let got = seg.get(&key, snapshot).unwrap().map(|v| {
            assert_eq!(v.key, key);
            (v.ts, v.kind, v.value.to_vec())
        });
        assert_eq!(
            got,
            model_get(&model, &key, snapshot),
            "{key:?} at {snapshot}"
        );
    }

    // Lower bounds.
    let keys: Vec<&Vec<u8>> = model.keys().map(|k| &k.0).collect();
    for _ in 0..300 {
        let key = random_key(&mut rng, &model);
        let expect = keys.partition_point(|k| k.as_slice() < key.as_slice());
        assert_eq!(seg.lower_bound(&key).unwrap(), expect);
    }

    // Ranges, from the front, the back and both.
    for round in 0..150 {
        let (lower, upper) = if round == 0 {
            (Bound::Unbounded, Bound::Unbounded)
        } else {
            (
                random_bound(&mut rng, &model),
                random_bound(&mut rng, &model),
            )
        };
        let snapshot = if round % 5 == 0 {
            u64::MAX
        } else {
            rng.random_range(0..1001)
        };
        let expect = model_visible(&model, snapshot, &lower, &upper);
        let it = || seg.visible(snapshot, lower.clone(), upper.clone());
        let fwd: Vec<Item> = it().map(|r| owned(r.unwrap())).collect();
        assert_eq!(fwd, expect, "{lower:?}..{upper:?} at {snapshot}");
        let mut bwd: Vec<Item> = it().rev().map(|r| owned(r.unwrap())).collect();
        bwd.reverse();
        assert_eq!(bwd, expect);
        let (mut front, mut back) = (Vec::new(), Vec::new());
        let mut mixed = it();
        loop {
            let next = if rng.random_bool(0.5) {
                mixed.next().map(|r| front.push(owned(r.unwrap())))
            } else {
                mixed.next_back().map(|r| back.push(owned(r.unwrap())))
            };
            if next.is_none() {
                break;
            }
        }
        assert!(mixed.next().is_none() && mixed.next_back().is_none());
        back.reverse();
        front.extend(back);
        assert_eq!(front, expect);
    }
}

#[test]
fn empty_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.seg");
    let meta = write(&path, &Model::new());
    let seg = Segment::open(&path, Verify::Once).unwrap();
    assert_eq!(seg.meta(), &meta);
    assert_eq!(meta, expected_meta(&Model::new(), meta.size));
    assert_eq!(seg.len(), 0);
    assert!(seg.get(b"a", u64::MAX).unwrap().is_none());
    assert_eq!(seg.lower_bound(b"a").unwrap(), 0);
    assert!(seg.entry(0).is_err());
    let mut it = seg.visible(u64::MAX, Bound::Unbounded, Bound::Unbounded);
    assert!(it.next().is_none());
    assert!(it.next_back().is_none());
}

#[test]
fn bad_order_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.seg");
    let mut w = SegmentWriter::create(&path).unwrap();
    w.add(b"b", 5, Kind::Put, b"x").unwrap();
    assert!(matches!(
        w.add(b"a", 9, Kind::Put, b"y"),
        Err(Error::Io { .. })
    ));
    assert!(w.add(b"b", 5, Kind::Put, b"y").is_err());
    assert!(w.add(b"b", 6, Kind::Put, b"y").is_err());
    assert!(w.add(b"", 1, Kind::Put, b"y").is_err());
    assert!(w.add(b"c", 1, Kind::Delete, b"y").is_err());
    w.add(b"b", 4, Kind::Delete, b"").unwrap();
    w.add(b"ba", 9, Kind::Put, b"z").unwrap();
    assert_eq!(w.entries(), 3);
    // A second writer cannot take the same path.
    assert!(SegmentWriter::create(&path).is_err());
    let meta = w.finish().unwrap();
    assert_eq!(
        (meta.keys, meta.tombstones, meta.min_ts, meta.max_ts),
        (2, 1, 4, 9)
    );
    assert_eq!(meta.newest_put_bytes, 2 + 1 + 1 + 1);
    let seg = Segment::open(&path, Verify::Once).unwrap();
    let v = seg.get(b"b", 4).unwrap().unwrap();
    assert_eq!((v.ts, v.kind), (4, Kind::Delete));
    assert!(seg.get(b"b", 3).unwrap().is_none());
}

#[test]
fn unfinished_writer_removes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.seg");
    let mut w = SegmentWriter::create(&path).unwrap();
    w.add(b"k", 1, Kind::Put, b"v").unwrap();
    assert!(path.exists());
    drop(w);
    assert!(!path.exists());
}

/// Check every answer of `seg` against `model`: each is either right or a
/// corruption error.
fn check_or_corrupted(seg: &Segment, model: &Model, meta: &SegmentMeta) {
    let corrupted = |e: &Error| matches!(e, Error::Corrupted { .. });
    assert_eq!(seg.meta(), meta);
    assert_eq!(seg.len(), model.len());
    for (i, ((key, Reverse(ts)), (kind, value))) in model.iter().enumerate() {
        match seg.entry(i) {
            Ok(v) => assert_eq!(
                (v.key, v.ts, v.kind, v.value),
                (&key[..], *ts, *kind, &value[..])
            ),
            Err(e) => assert!(corrupted(&e), "{e}"),
        }
        for snapshot in [*ts, ts - 1, u64::MAX] {
            match seg.get(key, snapshot) {
                Ok(got) => assert_eq!(
                    got.map(|v| (v.ts, v.kind, v.value.to_vec())),
                    model_get(model, key, snapshot)
                ),
                Err(e) => assert!(corrupted(&e), "{e}"),
            }
        }
    }
    for absent in [&b"zz"[..], b"\0", b"ab"] {
        match seg.get(absent, u64::MAX) {
            Ok(got) => assert_eq!(
                got.map(|v| v.ts),
                model_get(model, absent, u64::MAX).map(|m| m.0)
            ),
            Err(e) => assert!(corrupted(&e), "{e}"),
        }
    }
    let keys: Vec<&Vec<u8>> = model.keys().map(|k| &k.0).collect();
    for key in [&b"b"[..], b"c", b"ca"] {
        match seg.lower_bound(key) {
            Ok(i) => assert_eq!(i, keys.partition_point(|k| k.as_slice() < key)),
            Err(e) => assert!(corrupted(&e), "{e}"),
        }
    }
    // A scan from a bound, asking ahead for its slot and entry as a merge
    // does: the hints read the index too, and must not trip over damage.
    for lower in [&b"b"[..], b"bb"] {
        let lower = Bound::Included(lower.to_vec());
        let expect = model_visible(model, u64::MAX, &lower, &Bound::Unbounded);
        let mut it = seg.visible(u64::MAX, lower, Bound::Unbounded);
        it.prefetch_front(true);
        it.prefetch_front(false);
        let mut got = Vec::new();
        for r in &mut it {
            match r {
                Ok(item) => got.push(owned(item)),
                Err(e) => {
                    assert!(corrupted(&e), "{e}");
                    break;
                }
            }
        }
        assert_eq!(got, expect[..got.len()]);
    }
    for snapshot in [u64::MAX, 25] {
        let expect = model_visible(model, snapshot, &Bound::Unbounded, &Bound::Unbounded);
        let mut fwd = Vec::new();
        let mut it = seg.visible(snapshot, Bound::Unbounded, Bound::Unbounded);
        for r in &mut it {
            match r {
                Ok(item) => fwd.push(owned(item)),
                Err(e) => {
                    assert!(corrupted(&e), "{e}");
                    break;
                }
            }
        }
        assert!(it.next().is_none() && it.next_back().is_none());
        assert_eq!(fwd, expect[..fwd.len()]);
        let mut bwd = Vec::new();
        for r in seg
            .visible(snapshot, Bound::Unbounded, Bound::Unbounded)
            .rev()
        {
            match r {
                Ok(item) => bwd.push(owned(item)),
                Err(e) => {
                    assert!(corrupted(&e), "{e}");
                    break;
                }
            }
        }
        let tail: Vec<Item> = expect.iter().rev().take(bwd.len()).cloned().collect();
        assert_eq!(bwd, tail);
    }
}

fn small_model() -> Model {
    let mut model = Model::new();
    let keys: [&[u8]; 8] = [b"a", b"ab", b"abc", b"b", b"ba", b"c", b"cab", b"d"];
    for (i, key) in keys.iter().enumerate() {
        for v in 0..(i % 3 + 1) as u64 {
            let ts = 10 + 10 * v + i as u64;
            let entry = if (i + v as usize) % 4 == 3 {
                (Kind::Delete, Vec::new())
            } else {
                (Kind::Put, format!("value-{i}-{v}").into_bytes())
            };
            model.insert((key.to_vec(), Reverse(ts)), entry);
        }
    }
    model
}

#[test]
fn every_damaged_byte_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.seg");
    let model = small_model();
    let meta = write(&good, &model);
    check_or_corrupted(&Segment::open(&good, Verify::Once).unwrap(), &model, &meta);
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.path().join("bad.seg");
    let mut opened = 0;
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[at] ^= flip;
            std::fs::write(&bad, &damaged).unwrap();
            match Segment::open(&bad, Verify::Once) {
                Ok(seg) => {
                    opened += 1;
                    check_or_corrupted(&seg, &model, &meta);
                }
                Err(Error::Corrupted { file, .. }) => assert_eq!(file, bad),
                Err(Error::BadMagic { .. } | Error::UnsupportedVersion { .. }) => {}
                Err(e) => panic!("byte {at}: unexpected error {e}"),
            }
        }
    }
    // Damage to entry data passes the open and is caught on reading.
    assert!(opened > bytes.len());
}

#[test]
fn truncated_or_extended_is_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.seg");
    let model = small_model();
    write(&good, &model);
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.path().join("bad.seg");
    for len in (0..bytes.len()).chain([bytes.len() + 1, bytes.len() + 8]) {
        let mut damaged = bytes.clone();
        damaged.resize(len, 0);
        std::fs::write(&bad, &damaged).unwrap();
        match Segment::open(&bad, Verify::Once) {
            Err(Error::Corrupted { .. }) => {}
            Err(e) => panic!("length {len}: unexpected error {e}"),
            Ok(_) => panic!("length {len}: opened"),
        }
    }
}

#[test]
fn values_are_slices_of_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zc.seg");
    let mut model = Model::new();
    model.insert((b"key".to_vec(), Reverse(7)), (Kind::Put, vec![9; 100]));
    write(&path, &model);
    let seg = Segment::open(&path, Verify::Once).unwrap();
    let a = seg.get(b"key", 7).unwrap().unwrap().value.as_ptr();
    let b = seg.entry(0).unwrap().value.as_ptr();
    assert_eq!(a, b);
}

/// A model whose entries span block boundaries, some several blocks.
fn multi_block_model() -> Model {
    let mut model = Model::new();
    for i in 0..200u32 {
        let len = match i % 7 {
            0 => 3 * format::BLOCK + 11,
            3 => format::BLOCK - 9,
            _ => (i as usize * 37) % 700,
        };
        let value = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
        model.insert(
            (format!("key{i:05}").into_bytes(), Reverse(5)),
            (Kind::Put, value),
        );
    }
    model
}

#[test]
fn entries_across_blocks_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.seg");
    let model = multi_block_model();
    let meta = write(&path, &model);
    let seg = Segment::open(&path, Verify::Once).unwrap();
    // Twice: the second pass reads verified blocks.
    for _ in 0..2 {
        check_or_corrupted(&seg, &model, &meta);
        let all: Vec<Item> = seg
            .visible(u64::MAX, Bound::Unbounded, Bound::Unbounded)
            .map(|r| owned(r.unwrap()))
            .collect();
        assert_eq!(
            all,
            model_visible(&model, u64::MAX, &Bound::Unbounded, &Bound::Unbounded)
        );
    }
}

#[test]
fn a_damaged_block_fails_every_read_that_touches_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.seg");
    let model = multi_block_model();
    let meta = write(&good, &model);
    let bytes = std::fs::read(&good).unwrap();
    let layout = layout_of(&bytes);
    let data_end = layout.data_end as usize;
    let blocks = data_end.div_ceil(format::BLOCK);
    assert!(blocks > 8);
    let seg_good = Segment::open(&good, Verify::Once).unwrap();
    for b in [0, 1, blocks / 2, blocks - 1] {
        // Damage the block's data; the same block may also hold the start
        // of the offset table, which then fails reads through it too.
        let (start, end) = format::block_range(b, data_end);
        let (_, block_end) = format::block_range(b, layout.blocks_off as usize);
        let mut damaged = bytes.clone();
        damaged[(start + end) / 2] ^= 0x10;
        let bad = dir.path().join(format!("bad{b}.seg"));
        std::fs::write(&bad, &damaged).unwrap();
        let seg = Segment::open(&bad, Verify::Once).unwrap();
        check_or_corrupted(&seg, &model, &meta);
        // Every entry that lies in the block fails, every time; the others
        // are read as in the intact file.
        for round in 0..2 {
            let mut failed = 0;
            for i in 0..seg.len() {
                let at = seg_good.offset_of(i).unwrap();
                let len = seg_good.entry(i).unwrap();
                let size = format::entry_size(len.key.len(), len.value.len());
                let table_at = data_end + 8 * i;
                let touches =
                    at < end && at + size > start || (start..block_end).contains(&table_at);
                match seg.entry(i) {
                    Ok(v) => {
                        assert!(!touches, "round {round}: entry {i} in a damaged block");
                        assert_eq!(v.value, len.value);
                    }
                    Err(Error::Corrupted { .. }) => {
                        assert!(touches, "round {round}: entry {i} failed");
                        failed += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(failed > 0);
        }
    }
}

/// The section offsets of a segment file, from its header.
fn layout_of(bytes: &[u8]) -> format::Layout {
    let field = |at| format::le_u64(bytes, at);
    format::Layout::new(
        field(format::H_DATA_END),
        field(format::H_ENTRIES),
        field(format::H_SLOTS),
    )
    .unwrap()
}

/// Many small entries: an offset table and an index of many blocks each.
fn many_entries_model() -> Model {
    let mut model = Model::new();
    for i in 0..20_000u32 {
        let key = format!("k{:08}", i.wrapping_mul(2_654_435_761)).into_bytes();
        for v in 0..(1 + i % 2) as u64 {
            let value = format!("v{i}.{v}").into_bytes();
            model.insert((key.clone(), Reverse(100 - v)), (Kind::Put, value));
        }
    }
    model
}

/// `bytes` with one bit flipped in the middle of the `n`-th block that lies
/// wholly in `[from, to)`, and that block's range.
fn flip_in_block(bytes: &[u8], from: u64, to: u64, n: usize) -> (Vec<u8>, usize, usize) {
    let first = (from as usize).div_ceil(format::BLOCK);
    let b = first + n;
    let (start, end) = (b * format::BLOCK, (b + 1) * format::BLOCK);
    assert!(
        end <= to as usize,
        "the section has fewer than {} whole blocks",
        n + 1
    );
    let mut damaged = bytes.to_vec();
    damaged[start + 1234] ^= 0x04;
    (damaged, start, end)
}

fn is_corruption_of(e: &Error, file: &Path, block_start: usize) -> bool {
    matches!(e, Error::Corrupted { file: f, offset, .. }
        if f == file && *offset == block_start as u64)
}

#[test]
fn opening_checks_no_table_or_index_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.seg");
    let model = many_entries_model();
    write(&path, &model);
    let seg = Segment::open(&path, Verify::Once).unwrap();
    let layout = layout_of(&std::fs::read(&path).unwrap());
    assert!(layout.blocks > 200);
    // Nothing covered by the blocks has been checked by the open.
    assert_eq!(seg.verified_blocks(), 0);
    // A point read checks the block of its slot and those of its entry;
    // the same read again checks nothing new.
    let key = &model.keys().nth(777).unwrap().0;
    assert!(seg.get(key, u64::MAX).unwrap().is_some());
    let after_one = seg.verified_blocks();
    assert!((2..=4).contains(&after_one), "{after_one}");
    seg.get(key, u64::MAX).unwrap();
    assert_eq!(seg.verified_blocks(), after_one);
    // Entry `i` by index checks the table block holding its offset.
    seg.entry(model.len() / 2).unwrap();
    assert!(seg.verified_blocks() <= after_one + 2);
}

#[test]
fn a_damaged_index_block_fails_the_lookups_that_probe_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.seg");
    let model = many_entries_model();
    let meta = write(&good, &model);
    let bytes = std::fs::read(&good).unwrap();
    let layout = layout_of(&bytes);
    let seed = format::le_u64(&bytes, format::H_SEED);
    let slots = format::le_u64(&bytes, format::H_SLOTS) as usize;
    let (damaged, start, end) = flip_in_block(&bytes, layout.index_off, layout.blocks_off, 3);
    let bad = dir.path().join("bad.seg");
    std::fs::write(&bad, &damaged).unwrap();
    // The open does not read the index, so it does not see the damage.
    let seg = Segment::open(&bad, Verify::Once).unwrap();
    assert_eq!(seg.meta(), &meta);

    // The slots a lookup of `key` probes, in the intact file: from its home
    // slot to the one naming the key, or else the first empty one.
    let names_key = |slot: u64, hash: u64, key: &[u8]| {
        let entry = format::slot_offset(slot) as usize;
        let len = format::le_u32(&bytes, entry + format::E_KEY_LEN) as usize & format::MAX_KEY_LEN;
        format::slot_tag_matches(slot, hash)
            && &bytes[entry + format::E_KEY..entry + format::E_KEY + len] == key
    };
    let touches_damage = |key: &[u8]| {
        let hash = format::hash_key(key, seed);
        let mut at = hash as usize & (slots - 1);
        loop {
            let off = layout.index_off as usize + 8 * at;
            if (start..end).contains(&off) {
                return true;
            }
            let slot = format::le_u64(&bytes, off);
            if slot == 0 || names_key(slot, hash, key) {
                return false;
            }
            at = (at + 1) & (slots - 1);
        }
    };
    for round in 0..2 {
        let (mut failed, mut served) = (0, 0);
        let mut last: Option<&Vec<u8>> = None;
        for (key, _) in model.keys() {
            if last == Some(key) {
                continue;
            }
            last = Some(key);
            match seg.get(key, u64::MAX) {
                Ok(v) => {
                    assert!(!touches_damage(key), "round {round}: {key:?} read");
                    let v = v.unwrap();
                    assert_eq!(
                        Some((v.ts, v.kind, v.value.to_vec())),
                        model_get(&model, key, u64::MAX)
                    );
                    served += 1;
                }
                Err(e) => {
                    assert!(touches_damage(key), "round {round}: {key:?}: {e}");
                    assert!(is_corruption_of(&e, &bad, start), "{e}");
                    failed += 1;
                }
            }
        }
        assert!(
            failed > 0 && served > failed,
            "{failed} failed, {served} served"
        );
    }
    check_or_corrupted(&seg, &model, &meta);
}

#[test]
fn a_damaged_offset_table_block_fails_the_reads_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.seg");
    let model = many_entries_model();
    let meta = write(&good, &model);
    let bytes = std::fs::read(&good).unwrap();
    let layout = layout_of(&bytes);
    let (damaged, start, end) = flip_in_block(&bytes, layout.data_end, layout.index_off, 5);
    let bad = dir.path().join("bad.seg");
    std::fs::write(&bad, &damaged).unwrap();
    let seg = Segment::open(&bad, Verify::Once).unwrap();
    assert_eq!(seg.meta(), &meta);

    // Entry `i` by index reads its offset from the table: it fails exactly
    // when that offset lies in the damaged block, every time.
    for round in 0..2 {
        let mut failed = 0;
        for (i, ((key, Reverse(ts)), (kind, value))) in model.iter().enumerate() {
            let table_at = layout.data_end as usize + 8 * i;
            match seg.entry(i) {
                Ok(v) => {
                    assert!(
                        !(start..end).contains(&table_at),
                        "round {round}: entry {i}"
                    );
                    assert_eq!(
                        (v.key, v.ts, v.kind, v.value),
                        (&key[..], *ts, *kind, &value[..])
                    );
                }
                Err(e) => {
                    assert!((start..end).contains(&table_at), "round {round}: {i}: {e}");
                    assert!(is_corruption_of(&e, &bad, start), "{e}");
                    failed += 1;
                }
            }
        }
        assert_eq!(failed, format::BLOCK / 8);
    }
    // Point reads go through the index and the data only.
    for ((key, Reverse(ts)), _) in model.iter().step_by(7) {
        let v = seg.get(key, *ts).unwrap().unwrap();
        assert_eq!(v.ts, *ts);
    }
    // A scan from the back walks the table and meets the damage.
    let err = seg
        .visible(u64::MAX, Bound::Unbounded, Bound::Unbounded)
        .rev()
        .find_map(Result::err)
        .expect("the backward scan crosses the damaged block");
    assert!(is_corruption_of(&err, &bad, start), "{err}");
    check_or_corrupted(&seg, &model, &meta);
}

#[test]
fn a_version_2_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.seg");
    write(&path, &small_model());
    // A header that is whole in every way but its version.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[format::H_VERSION..format::H_VERSION + 4].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..format::H_CRC]);
    bytes[format::H_CRC..format::H_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    match Segment::open(&path, Verify::Once) {
        Err(Error::UnsupportedVersion {
            file,
            found: 2,
            supported: format::VERSION,
        }) => assert_eq!(file, path),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a version 2 segment opened"),
    }
    assert_eq!(format::VERSION, 3);
}

/// Recompute the block checksums of `bytes` and the checksums over them,
/// as the writer does: a test can then forge a file that opens and whose
/// every block verifies, yet holds what no writer would write.
fn reseal(bytes: &mut [u8]) {
    let layout = layout_of(bytes);
    let (blocks_off, footer_off) = (layout.blocks_off as usize, layout.footer_off as usize);
    for b in 0..layout.blocks as usize {
        let (start, end) = format::block_range(b, blocks_off);
        let crc = crc32c::crc32c(&bytes[start..end]);
        bytes[blocks_off + 4 * b..][..4].copy_from_slice(&crc.to_le_bytes());
    }
    let table_crc = crc32c::crc32c(&bytes[blocks_off..footer_off]);
    bytes[footer_off + format::F_BLOCKS_CRC..][..4].copy_from_slice(&table_crc.to_le_bytes());
    let crc_at = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[footer_off..crc_at]);
    bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
}

/// A key (not in [`many_entries_model`]) whose home slot is `slot`.
fn key_homed_at(seed: u64, slots: usize, slot: usize) -> Vec<u8> {
    (0u64..)
        .map(|i| format!("absent{i}").into_bytes())
        .find(|k| format::hash_key(k, seed) as usize & (slots - 1) == slot)
        .unwrap()
}

#[test]
fn a_probe_checks_each_index_block_it_enters() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.seg");
    write(&good, &many_entries_model());
    let bytes = std::fs::read(&good).unwrap();
    let layout = layout_of(&bytes);
    let index_off = layout.index_off as usize;
    let seed = format::le_u64(&bytes, format::H_SEED);
    let slots = format::le_u64(&bytes, format::H_SLOTS) as usize;
    let block_of = |slot: usize| (index_off + 8 * slot) / format::BLOCK;
    // The first slot that starts a block, and the wrap from the last slot.
    let boundary = (index_off.div_ceil(format::BLOCK) * format::BLOCK - index_off) / 8;
    for (last, next) in [(boundary - 1, boundary), (slots - 1, 0)] {
        assert_ne!(block_of(last), block_of(next));
        let key = key_homed_at(seed, slots, last);
        let hash = format::hash_key(&key, seed);
        // The key's home slot names another key (its tag differs), so a
        // lookup of the key goes on into the next block.
        let mut forged = bytes.clone();
        let other = !hash & !format::SLOT_OFFSET_MASK | (format::HEADER as u64 / 8);
        forged[index_off + 8 * last..][..8].copy_from_slice(&other.to_le_bytes());
        reseal(&mut forged);
        let path = dir.path().join(format!("forged{next}.seg"));
        std::fs::write(&path, &forged).unwrap();
        assert!(Segment::open(&path, Verify::Once)
            .unwrap()
            .get(&key, u64::MAX)
            .unwrap()
            .is_none());

        // Damage in the block the probe enters fails the lookup, though the
        // block it started in is intact.
        forged[index_off + 8 * next + 3] ^= 0x20;
        std::fs::write(&path, &forged).unwrap();
        let seg = Segment::open(&path, Verify::Once).unwrap();
        let (start, _) = format::block_range(block_of(next), layout.blocks_off as usize);
        for _ in 0..2 {
            let err = seg.get(&key, u64::MAX).map(|_| ()).unwrap_err();
            assert!(is_corruption_of(&err, &path, start), "{err}");
        }
    }
}

/// A block that changes in place after this process checked it: trusted
/// with `Verify::Once` (the mapping shows the new bytes unchecked), an
/// error at the next read with `Verify::EveryRead`.
#[test]
fn every_read_checks_bytes_that_changed_after_the_first_check() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    model.insert((b"key".to_vec(), Reverse(7)), (Kind::Put, vec![9; 100]));
    for verify in [Verify::Once, Verify::EveryRead] {
        let path = dir.path().join(format!("{verify:?}.seg"));
        write(&path, &model);
        let seg = Segment::open(&path, verify).unwrap();
        let value = seg.get(b"key", 7).unwrap().unwrap().value;
        assert_eq!(value, &[9; 100][..]);
        let checked = seg.verified_blocks();
        assert_eq!(checked > 0, verify == Verify::Once, "{verify:?}");
        // Change one byte of the value in the file, under the mapping.
        let at = seg.offset_of(0).unwrap() as u64 + 40;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let byte = std::fs::read(&path).unwrap()[at as usize..]
            .iter()
            .position(|&b| b == 9);
        let at = at + byte.unwrap() as u64;
        file.write_at(&[8], at).unwrap();
        match (verify, seg.get(b"key", 7)) {
            (Verify::Once, Ok(Some(v))) => assert_ne!(v.value, &[9; 100][..]),
            (Verify::EveryRead, Err(Error::Corrupted { .. })) => {}
            (_, other) => panic!(
                "{verify:?}: {:?}",
                other.map(|v| v.map(|v| v.value.to_vec()))
            ),
        }
    }
}
