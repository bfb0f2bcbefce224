//! Replays the kept corpus of the `jsonl` fuzz target
//! (`fuzz/corpus/jsonl/`) through the function the target calls.

use std::path::{Path, PathBuf};

#[test]
fn jsonl() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/jsonl");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("reading the corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus of jsonl is empty");
    for path in &files {
        let data = std::fs::read(path).expect("reading a corpus file");
        if std::panic::catch_unwind(|| scribe::fuzzing::jsonl(&data)).is_err() {
            panic!("fuzz target jsonl panics on {}", path.display());
        }
    }
}
