//! Commits of a few keys spread over a large store insert their versions
//! through searches that run in lockstep. Every snapshot taken between such
//! commits must read exactly its own state, through point reads (the key
//! index), forward scans (level 0), scans from keys that do not exist (a
//! search from the top level) and reverse scans (searches among the upper
//! levels), also after the store is rebuilt from the log.

use std::collections::BTreeMap;
use std::ops::Bound;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scribedb::{Database, Durability, ReadTxn};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn open(dir: &std::path::Path) -> Database {
    Database::builder()
        .durability(Durability::None)
        .open(dir)
        .unwrap()
}

fn random_key(rng: &mut StdRng) -> Vec<u8> {
    // Short keys with shared prefixes too, so that ties of the 8-byte
    // prefix are decided by the rest of the key.
    let len = if rng.random_bool(0.3) { 9 } else { 12 };
    let mut k = vec![0u8; len];
    rng.fill(&mut k[..]);
    if rng.random_bool(0.3) {
        k[..8].copy_from_slice(b"sharedpf");
    }
    k
}

fn check(r: &ReadTxn, model: &Model, rng: &mut StdRng, what: &str) {
    let all: Vec<(Vec<u8>, Vec<u8>)> = r
        .iter()
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect();
    let expected: Vec<(Vec<u8>, Vec<u8>)> =
        model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(all.len(), expected.len(), "{what}: forward scan length");
    assert!(all == expected, "{what}: forward scan");
    let back: Vec<Vec<u8>> = r.iter().rev().map(|kv| kv.unwrap().0.to_vec()).collect();
    assert!(back.iter().eq(model.keys().rev()), "{what}: reverse scan");
    for _ in 0..200 {
        let probe = random_key(rng);
        assert_eq!(
            r.get(&probe).unwrap().map(<[u8]>::to_vec),
            model.get(&probe).cloned(),
            "{what}: get"
        );
        let got: Vec<Vec<u8>> = r
            .range(&probe[..]..)
            .take(3)
            .map(|kv| kv.unwrap().0.to_vec())
            .collect();
        let want: Vec<Vec<u8>> = model
            .range::<[u8], _>((Bound::Included(&probe[..]), Bound::Unbounded))
            .take(3)
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(got, want, "{what}: scan from a missing key");
        let got: Vec<Vec<u8>> = r
            .range(..&probe[..])
            .rev()
            .take(3)
            .map(|kv| kv.unwrap().0.to_vec())
            .collect();
        let want: Vec<Vec<u8>> = model
            .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(&probe[..])))
            .rev()
            .take(3)
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(got, want, "{what}: reverse scan below a missing key");
    }
    for k in model.keys().step_by(97) {
        assert_eq!(r.get(k).unwrap(), model.get(k).map(Vec::as_slice), "{what}");
    }
}

#[test]
fn spread_commits_match_the_model_at_every_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut model = Model::new();
    {
        let db = open(dir.path());
        let mut w = db.begin_write().unwrap();
        for i in 0..6000u32 {
            let k = random_key(&mut rng);
            let v = i.to_be_bytes().repeat(if i % 3 == 0 { 20 } else { 1 });
            w.put(&k, &v).unwrap();
            model.insert(k, v);
        }
        w.commit().unwrap();

        let mut held: Vec<(ReadTxn, Model)> = Vec::new();
        for c in 0..120u32 {
            let mut w = db.begin_write().unwrap();
            let existing: Vec<Vec<u8>> = model.keys().cloned().collect();
            for j in 0..rng.random_range(2..60) {
                let roll = rng.random_range(0..10);
                let key = if roll < 6 {
                    random_key(&mut rng)
                } else {
                    existing[rng.random_range(0..existing.len())].clone()
                };
                if roll == 9 {
                    w.delete(&key).unwrap();
                    model.remove(&key);
                } else {
                    let v = format!("c{c}j{j}")
                        .into_bytes()
                        .repeat(1 + (j as usize % 12));
                    w.put(&key, &v).unwrap();
                    model.insert(key, v);
                }
            }
            w.commit().unwrap();
            if c % 10 == 0 {
                held.push((db.begin_read().unwrap(), model.clone()));
            }
        }
        for (i, (r, m)) in held.iter().enumerate() {
            check(r, m, &mut rng, &format!("snapshot {i}"));
        }
        check(&db.begin_read().unwrap(), &model, &mut rng, "latest");
    }
    // Without the coordination file the store is rebuilt from the log,
    // whose records insert the same way.
    std::fs::remove_file(dir.path().join("coord")).unwrap();
    let db = open(dir.path());
    check(
        &db.begin_read().unwrap(),
        &model,
        &mut rng,
        "after a rebuild",
    );
}
