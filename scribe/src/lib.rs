//! What the fuzz targets and tests of `scribe` call directly. The tool is
//! the binary; this is not an API.

#[doc(hidden)]
pub mod jsonl;

/// Entry points of the fuzz targets (`fuzz/` in the repository), also run
/// by the test that replays their kept corpora.
#[doc(hidden)]
pub mod fuzzing {
    use crate::jsonl;

    /// The JSON-lines reader of `load`: the input is split into lines as
    /// `load` splits it. Every record that parses writes back as one line
    /// that parses to the same key and value; every rejection says why.
    pub fn jsonl(data: &[u8]) {
        for line in data.split_inclusive(|&b| b == b'\n') {
            if jsonl::is_blank(line) {
                continue;
            }
            match jsonl::parse_record(line) {
                Ok((key, value)) => {
                    let mut out = Vec::new();
                    jsonl::write_record(&mut out, &key, &value).expect("writing to memory");
                    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
                    assert_eq!(out.last(), Some(&b'\n'), "a record ends its line");
                    assert!(!jsonl::is_blank(&out), "a record is not blank");
                    let again = jsonl::parse_record(&out).expect("a written record parses");
                    assert!(again == (key, value), "a record reads back the same");
                    let mut twice = Vec::new();
                    jsonl::write_record(&mut twice, &again.0, &again.1).expect("writing");
                    assert_eq!(out, twice, "writing is deterministic");
                }
                Err(why) => assert!(!why.is_empty(), "a rejection without a reason"),
            }
        }
    }
}
