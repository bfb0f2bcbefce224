//! End-to-end tests of the `scribe` binary on databases in temporary
//! directories: exit codes, output formats, and that `dump | load` keeps
//! arbitrary bytes intact.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A database directory that is removed at the end of the test.
struct TestDb {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl TestDb {
    fn new() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        TestDb { _dir: dir, path }
    }

    /// A second database path in the same temporary directory.
    fn sibling(&self, name: &str) -> PathBuf {
        self.path.with_file_name(name)
    }
}

fn command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scribe"));
    cmd.args(args);
    cmd
}

/// Run with `stdin` as standard input and collect the output.
fn run_with_input<I, S>(args: I, stdin: &[u8]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        // The command may stop reading early (on a bad line): ignore EPIPE.
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    output
}

fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_input(args, b"")
}

/// Run, expect success, return stdout.
fn ok<I, S>(args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = run(&args);
    assert!(
        out.status.success(),
        "scribe {args:?} failed with {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Run with `stdin` as standard input, expect exit code 2 (an error),
/// return stderr.
fn fails_with_input<I, S>(args: I, stdin: &[u8]) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = run_with_input(&args, stdin);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "scribe {args:?}: {err}");
    err
}

/// Run, expect exit code 2 (an error), return stderr.
fn fails<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    fails_with_input(args, b"")
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Arguments from raw bytes, as a shell would pass them.
fn raw(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

fn json(bytes: Vec<u8>) -> Value {
    serde_json::from_slice(&bytes).unwrap()
}

/// Every key and value, read with the library rather than the tool.
fn contents(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let db = scribedb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    txn.iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// JSONL for `records` in the dump format, built here independently.
fn jsonl(records: &[(&str, &str)]) -> String {
    records
        .iter()
        .map(|(k, v)| format!("{}\n", serde_json::json!({ "key": k, "value": v })))
        .collect()
}

#[test]
fn put_get_del() {
    let db = TestDb::new();
    let p = db.path.as_os_str();
    ok([raw(b"put"), p, raw(b"greeting"), raw(b"hello world")]);
    assert_eq!(ok([raw(b"get"), p, raw(b"greeting")]), b"hello world");

    // Overwrite, then an empty value, which is a value and not an absence.
    ok([raw(b"put"), p, raw(b"greeting"), raw(b"hi")]);
    assert_eq!(ok([raw(b"get"), p, raw(b"greeting")]), b"hi");
    ok([raw(b"put"), p, raw(b"empty"), raw(b"")]);
    let out = run([raw(b"get"), p, raw(b"empty")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    ok([raw(b"del"), p, raw(b"greeting")]);
    let out = run([raw(b"get"), p, raw(b"greeting")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(stderr(&out), "scribe: key not found: greeting\n");

    // Deleting what is not there succeeds and changes nothing.
    ok([raw(b"del"), p, raw(b"never-was")]);
    assert_eq!(
        contents(&db.path),
        BTreeMap::from([(b"empty".to_vec(), Vec::new())])
    );
}

#[test]
fn raw_and_escaped_byte_arguments() {
    let db = TestDb::new();
    let p = db.path.as_os_str();
    // Non-UTF-8 bytes pass through arguments untouched.
    ok([raw(b"put"), p, raw(b"k\xff"), raw(b"v\xfe\n")]);
    assert_eq!(ok([raw(b"get"), p, raw(b"k\xff")]), b"v\xfe\n");
    // With --escaped, arguments can hold any byte, NUL included.
    ok([
        raw(b"-e"),
        raw(b"put"),
        p,
        raw(b"nul\\x00"),
        raw(b"a\\tb\\\\c\\x00"),
    ]);
    assert_eq!(
        ok([raw(b"--escaped"), raw(b"get"), p, raw(b"nul\\x00")]),
        b"a\tb\\c\0"
    );

    let err = fails([raw(b"-e"), raw(b"get"), p, raw(b"bad\\q")]);
    assert!(err.starts_with("scribe: bad key: unknown escape"), "{err}");
}

#[test]
fn errors_exit_2_and_reading_never_creates_a_database() {
    let db = TestDb::new();
    let missing = db.sibling("missing");
    for cmd in ["get", "scan", "dump", "stat", "readers", "del", "check"] {
        let mut args = vec![OsStr::new(cmd), missing.as_os_str()];
        if matches!(cmd, "get" | "del") {
            args.push(OsStr::new("k"));
        }
        let err = fails(&args);
        assert!(err.contains("no such database directory"), "{cmd}: {err}");
    }
    assert!(!missing.exists());

    // Nor does it turn some other directory into one.
    let other = db.sibling("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let err = fails(["stat", other.to_str().unwrap()]);
    assert!(err.contains("not a ScribeDB database"), "{err}");
    let names: Vec<_> = std::fs::read_dir(&other)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);

    let p = db.path.to_str().unwrap();
    ok(["put", p, "k", "v"]);
    // An empty key is refused by the database, with its reason.
    let err = fails(["put", p, "", "v"]);
    assert!(err.starts_with("scribe: key of 0 bytes"), "{err}");
    // Usage errors are exit 2 as well.
    for args in [
        vec!["scan", p, "--limit", "many"],
        vec!["scan", p, "--format", "xml"],
        vec!["load", p, "-", "--batch", "0"],
        vec!["frobnicate", p],
    ] {
        fails(&args);
    }
}

/// A database of six fruit, loaded through stdin.
fn fruit_db() -> TestDb {
    let db = TestDb::new();
    let input = jsonl(&[
        ("apple", "red"),
        ("apricot", "orange"),
        ("banana", "yellow"),
        ("blueberry", "blue"),
        ("cherry", "dark red"),
        ("date", "brown"),
    ]);
    let out = run_with_input(["load", db.path.to_str().unwrap(), "-"], input.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    db
}

fn scan(db: &TestDb, extra: &[&str]) -> String {
    let mut args = vec!["scan", db.path.to_str().unwrap()];
    args.extend_from_slice(extra);
    text(ok(args))
}

#[test]
fn scan_ranges_and_directions() {
    let db = fruit_db();
    assert_eq!(
        scan(&db, &[]),
        "apple\tred\napricot\torange\nbanana\tyellow\nblueberry\tblue\ncherry\tdark red\ndate\tbrown\n"
    );
    assert_eq!(
        scan(&db, &["--prefix", "ap"]),
        "apple\tred\napricot\torange\n"
    );
    assert_eq!(
        scan(&db, &["--prefix", "ap", "--reverse"]),
        "apricot\torange\napple\tred\n"
    );
    // Start is inclusive, end exclusive.
    assert_eq!(
        scan(&db, &["--start", "banana", "--end", "cherry"]),
        "banana\tyellow\nblueberry\tblue\n"
    );
    assert_eq!(
        scan(&db, &["--start", "c"]),
        "cherry\tdark red\ndate\tbrown\n"
    );
    assert_eq!(scan(&db, &["--end", "apricot"]), "apple\tred\n");
    assert_eq!(
        scan(&db, &["--reverse", "--limit", "2"]),
        "date\tbrown\ncherry\tdark red\n"
    );
    assert_eq!(
        scan(&db, &["--limit", "1", "--start", "b"]),
        "banana\tyellow\n"
    );
    assert_eq!(
        scan(
            &db,
            &["--start", "b", "--end", "d", "--reverse", "--limit", "2"]
        ),
        "cherry\tdark red\nblueberry\tblue\n"
    );
    // Prefix and bounds intersect; crossed bounds are simply empty.
    assert_eq!(
        scan(&db, &["--prefix", "b", "--start", "bl"]),
        "blueberry\tblue\n"
    );
    assert_eq!(
        scan(&db, &["--prefix", "b", "--end", "c"]),
        "banana\tyellow\nblueberry\tblue\n"
    );
    assert_eq!(scan(&db, &["--start", "d", "--end", "b"]), "");
    assert_eq!(scan(&db, &["--prefix", "zz"]), "");
    assert_eq!(scan(&db, &["--limit", "0"]), "");

    assert_eq!(
        scan(&db, &["--prefix", "b", "--format", "jsonl"]),
        jsonl(&[("banana", "yellow"), ("blueberry", "blue")])
    );
    assert_eq!(
        scan(&db, &["--format", "jsonl", "--reverse", "--limit", "1"]),
        jsonl(&[("date", "brown")])
    );
}

#[test]
fn scan_tsv_escapes_and_jsonl_base64() {
    let db = TestDb::new();
    let p = db.path.as_os_str();
    ok([raw(b"put"), p, raw(b"tab\there"), raw(b"line1\nline2\\end")]);
    ok([raw(b"put"), p, raw(b"ctl\x01\x7f"), raw(b"\xff\xfe")]);
    ok([raw(b"put"), p, raw("caf\u{e9}".as_bytes()), raw(b"")]);
    let tsv = text(ok([raw(b"scan"), p]));
    assert_eq!(
        tsv,
        "caf\\xc3\\xa9\t\nctl\\x01\\x7f\t\\xff\\xfe\ntab\\there\tline1\\nline2\\\\end\n"
    );
    let lines: Vec<Value> = text(ok([raw(b"scan"), p, raw(b"--format"), raw(b"jsonl")]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::json!({"key": "café", "value": ""}),
            serde_json::json!({"key": "ctl\u{1}\u{7f}", "value_b64": "//4="}),
            serde_json::json!({"key": "tab\there", "value": "line1\nline2\\end"}),
        ]
    );
    // What tsv prints, --escaped reads back.
    let key = tsv.lines().nth(1).unwrap().split('\t').next().unwrap();
    assert_eq!(
        ok([raw(b"-e"), raw(b"get"), p, raw(key.as_bytes())]),
        b"\xff\xfe"
    );
}

/// Keys and values that JSON, lines and UTF-8 all find awkward.
fn awkward_records() -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut records = BTreeMap::new();
    let mut add = |k: &[u8], v: &[u8]| {
        records.insert(k.to_vec(), v.to_vec());
    };
    add(b"plain", b"value");
    add(b"empty value", b"");
    add(b"\0", b"nul key");
    add(b"nul\0inside", b"\0\0\0");
    add(b"line\nbreak", b"value\nwith\r\nbreaks\n");
    add(
        b"\xff\xfe invalid utf-8",
        b"\x80 continuation without a start",
    );
    add(b"truncated \xe2\x82", b"\xc3");
    add("unicode \u{1F511}".as_bytes(), "κλειδί".as_bytes());
    add(b"quote\" and \\backslash", b"{\"not\": \"json\"}");
    add(b"\xff", b"");
    add(b"\xff\xff\xff", b"all ones");
    add(b"controls \x01\x1b[31m", b"\x7f\x1f");
    add(
        b"big",
        &(0..=255u8).cycle().take(300_000).collect::<Vec<u8>>(),
    );
    for i in 0..200u32 {
        add(format!("bulk/{i:05}").as_bytes(), &i.to_be_bytes());
    }
    records
}

#[test]
fn dump_load_round_trips_arbitrary_bytes() {
    let db = TestDb::new();
    let records = awkward_records();
    {
        // Write the source database with the library, not with the tool.
        let lib = scribedb::Database::open(&db.path).unwrap();
        let mut txn = lib.begin_write().unwrap();
        for (k, v) in &records {
            txn.put(k, v).unwrap();
        }
        txn.commit().unwrap();
    }
    let dump = ok(["dump", db.path.to_str().unwrap()]);
    assert_eq!(dump.iter().filter(|&&b| b == b'\n').count(), records.len());
    assert!(std::str::from_utf8(&dump).is_ok(), "a dump is UTF-8 text");

    // Into a new database from stdin, in one transaction.
    let copy = db.sibling("copy");
    let out = run_with_input(["load", copy.to_str().unwrap(), "-"], &dump);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!("loaded {} records in 1 transaction(s)\n", records.len())
    );
    assert_eq!(contents(&copy), records);
    assert_eq!(ok(["dump", copy.to_str().unwrap()]), dump);

    // Into another from a file, in batches.
    let file = db.sibling("dump.jsonl");
    std::fs::write(&file, &dump).unwrap();
    let batched = db.sibling("batched");
    let out = run([
        "load",
        batched.to_str().unwrap(),
        file.to_str().unwrap(),
        "--batch",
        "50",
        "--durability",
        "none",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let transactions = records.len().div_ceil(50);
    assert_eq!(
        stderr(&out),
        format!(
            "loaded {} records in {transactions} transaction(s)\n",
            records.len()
        )
    );
    assert_eq!(ok(["dump", batched.to_str().unwrap()]), dump);

    // The tool's view agrees with the library's for a binary value.
    assert_eq!(
        ok([
            raw(b"get"),
            copy.as_os_str(),
            raw(b"\xff\xfe invalid utf-8")
        ]),
        b"\x80 continuation without a start"
    );
}

#[test]
fn load_merges_and_accepts_either_spelling() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    ok(["put", p, "kept", "old"]);
    ok(["put", p, "replaced", "old"]);
    let input = concat!(
        "{\"key\":\"replaced\",\"value\":\"new\"}\n",
        "\n",
        "   \n",
        "{\"value_b64\":\"AAE=\",\"key_b64\":\"dGV4dA==\"}\r\n",
        "{\"key\":\"dup\",\"value\":\"first\"}\n",
        "{\"key\":\"dup\",\"value\":\"second\"}", // no final newline
    );
    let out = run_with_input(["load", p, "-"], input.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected: BTreeMap<Vec<u8>, Vec<u8>> = [
        (&b"dup"[..], &b"second"[..]),
        (b"kept", b"old"),
        (b"replaced", b"new"),
        (b"text", b"\x00\x01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_vec(), v.to_vec()))
    .collect();
    assert_eq!(contents(&db.path), expected);
}

#[test]
fn load_reports_the_bad_line_and_loads_nothing() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    ok(["put", p, "before", "1"]);
    let good = jsonl(&[("a", "1"), ("b", "2"), ("c", "3")]);
    let cases = [
        ("{\"key\":\"x\",\"value\":", "line 4: bad record"),
        (
            "{\"key\":\"x\"}",
            "line 4: record has neither \"value\" nor \"value_b64\"",
        ),
        (
            "{\"key\":\"x\",\"value\":\"1\",\"colour\":1}",
            "line 4: bad record",
        ),
        (
            "{\"key_b64\":\"***\",\"value\":\"1\"}",
            "line 4: \"key_b64\" is not valid base64",
        ),
        ("{\"key\":\"\",\"value\":\"1\"}", "line 4: key of 0 bytes"),
        ("\u{1}", "line 4: bad record"),
    ];
    for (bad, expected) in cases {
        let input = format!("{good}{bad}\n{good}");
        let err = fails_with_input(["load", p, "-"], input.as_bytes());
        assert!(
            err.starts_with(&format!("scribe: {expected}")),
            "{bad}: {err}"
        );
        assert!(err.trim_end().ends_with("nothing was loaded"), "{err}");
    }
    // Invalid UTF-8 in the stream is an error too, not a panic.
    let mut input = good.clone().into_bytes();
    input.extend_from_slice(b"{\"key\":\"\xff\",\"value\":\"\"}\n");
    let err = fails_with_input(["load", p, "-"], &input);
    assert!(err.starts_with("scribe: line 4: bad record"), "{err}");
    assert_eq!(
        contents(&db.path),
        BTreeMap::from([(b"before".to_vec(), b"1".to_vec())])
    );

    // In batches, the batches before the bad line stay committed.
    let input = format!("{good}oops\n");
    assert_eq!(
        fails_with_input(["load", p, "-", "--batch", "2"], input.as_bytes()),
        "scribe: line 4: bad record at column 1: expected value; \
         the 2 records before it were already committed\n"
    );
    assert_eq!(contents(&db.path).len(), 3);

    let err = fails(["load", p, db.sibling("no-such-file").to_str().unwrap()]);
    assert!(err.contains("no-such-file: No such file"), "{err}");
}

#[test]
fn stat_json_counts_keys() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    ok(["put", p, "a", "12345"]);
    ok(["put", p, "b", ""]);
    ok(["put", p, "c", "x"]);
    ok(["del", p, "c"]);
    let before = scribedb::timestamp::now_millis();
    let stat = json(ok(["stat", p, "--json"]));
    assert_eq!(stat["keys"], 2);
    assert_eq!(stat["versions"], 4, "three puts and a delete");
    assert_eq!(stat["data_bytes"], 1 + 5 + 1);
    assert_eq!(stat["readers"], 0);
    assert_eq!(stat["processes"], 1);
    assert_eq!(stat["writer"], Value::Null);
    assert!(stat["arenas"].as_u64().unwrap() >= 1);
    assert!(stat["wal_bytes"].as_u64().unwrap() > 0);
    assert!(stat["wal_file_bytes"].as_u64().unwrap() >= stat["wal_bytes"].as_u64().unwrap());
    let committed = stat["committed_ts"].as_u64().unwrap();
    assert_eq!(stat["oldest_snapshot"].as_u64(), Some(committed));
    // The commit happened within the last minute, and its date says so.
    let committed_ms = scribedb::timestamp::millis(committed);
    assert!(committed_ms <= before && before - committed_ms < 60_000);
    let at = stat["committed_at"].as_str().unwrap();
    assert_eq!(at.len(), "2024-01-01T00:00:00.000Z".len(), "{at}");
    assert!(at.ends_with('Z') && at.as_bytes()[10] == b'T', "{at}");
    assert_eq!(&at[20..23], format!("{:03}", committed_ms % 1000), "{at}");

    let table = text(ok(["stat", p]));
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["keys", "2"])),
        "{table}"
    );
    assert!(table.contains(at), "{table}");
}

#[test]
fn stat_of_an_empty_database_and_its_writer() {
    let db = TestDb::new();
    let lib = scribedb::Database::open(&db.path).unwrap();
    let stat = json(ok(["stat", db.path.to_str().unwrap(), "--json"]));
    assert_eq!(stat["keys"], 0);
    assert_eq!(stat["committed_ts"], 0);
    assert_eq!(stat["committed_at"], Value::Null);
    assert_eq!(stat["processes"], 2, "this test's handle and the command's");

    // While this process holds the writer role, stat names it.
    let txn = lib.begin_write().unwrap();
    let stat = json(ok(["stat", db.path.to_str().unwrap(), "--json"]));
    assert_eq!(stat["writer"]["pid"], std::process::id(), "{stat}");
    let since = stat["writer"]["since_ms"].as_u64().unwrap();
    assert!(scribedb::timestamp::now_millis() - since < 60_000);
    txn.abort();
    let stat = json(ok(["stat", db.path.to_str().unwrap(), "--json"]));
    assert_eq!(stat["writer"], Value::Null);
}

/// The readers listed by `scribe readers --json`.
fn readers(path: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["readers", path.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    json(ok(args))
}

#[test]
fn readers_lists_a_live_reader_of_another_process() {
    let db = TestDb::new();
    ok(["put", db.path.to_str().unwrap(), "k", "v"]);
    assert_eq!(readers(&db.path, &[]), serde_json::json!({"readers": []}));

    let lib = scribedb::Database::open(&db.path).unwrap();
    let txn = lib.begin_read().unwrap();
    let listed = readers(&db.path, &[]);
    let list = listed["readers"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{listed}");
    let reader = &list[0];
    assert_eq!(reader["pid"], std::process::id());
    assert_eq!(reader["snapshot"], txn.snapshot_ts());
    assert_eq!(reader["live"], true);
    assert!(reader["slot"].is_u64() && reader["age_ms"].is_u64() && reader["lag_ms"].is_u64());

    // A live reader is never reclaimed.
    let listed = readers(&db.path, &["--reclaim"]);
    assert_eq!(listed["reclaimed"], 0);
    assert_eq!(listed["readers"].as_array().unwrap().len(), 1);
    let table = text(ok(["readers", db.path.to_str().unwrap()]));
    assert!(
        table.contains(&std::process::id().to_string()) && table.contains("live"),
        "{table}"
    );

    drop(txn);
    assert_eq!(readers(&db.path, &[])["readers"], serde_json::json!([]));
}

#[test]
fn readers_reclaims_the_slot_of_a_killed_process() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    // Enough data that a dump blocks on a full pipe that nobody reads.
    let input: String = (0..4000)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"key": format!("k{i:05}"), "value": "v".repeat(256)})
            )
        })
        .collect();
    let out = run_with_input(["load", p, "-", "--durability", "none"], input.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));

    // Stay attached, so that the reader table outlives the killed process.
    let _attached = scribedb::Database::open(&db.path).unwrap();
    let mut dump = command(["dump", p])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = dump.id();
    let find = |listed: &Value| {
        listed["readers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["pid"] == pid)
            .cloned()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(reader) = find(&readers(&db.path, &[])) {
            assert_eq!(reader["live"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dump never registered a reader"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    dump.kill().unwrap();
    dump.wait().unwrap();

    let reader = find(&readers(&db.path, &[])).expect("a dead reader stays listed");
    assert_eq!(reader["live"], false);
    let table = text(ok(["readers", p]));
    assert!(table.contains("dead"), "{table}");

    let listed = readers(&db.path, &["--reclaim"]);
    assert_eq!(listed["reclaimed"], 1, "{listed}");
    assert_eq!(find(&listed), None);
    assert_eq!(
        text(ok(["readers", p, "--reclaim"])),
        "reclaimed 0 dead reader slot(s)\nno readers\n"
    );
}

#[test]
fn closed_stdout_is_not_an_error() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    let input: String = (0..20_000)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"key": format!("k{i:06}"), "value": "some value"})
            )
        })
        .collect();
    let out = run_with_input(
        ["load", p, "-", "--durability", "eventual"],
        input.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));

    for cmd in ["dump", "scan"] {
        let mut child = command([cmd, p])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        drop(child.stdout.take()); // like `| head -c 16`
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {:?} {}",
            out.status,
            stderr(&out)
        );
        assert_eq!(stderr(&out), "", "{cmd}");
    }
}

/// The `N segment(s)` after the arrow of a `compact` summary.
fn segments_after(summary: &str) -> u64 {
    let after = summary
        .split(" -> ")
        .nth(1)
        .unwrap_or_else(|| panic!("{summary}"));
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"))
}

/// Bytes of level-0 segments in `stat --json` output (0 if it has none).
fn level0_bytes(stat: &Value) -> u64 {
    let levels = stat["level_bytes"].as_array().expect("level_bytes");
    levels.first().map_or(0, |b| b.as_u64().unwrap())
}

#[test]
fn compact_keeps_every_key_and_leaves_one_run() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..40 {
        let (key, value) = (format!("key{i:03}"), format!("value {i}"));
        ok(["put", p, &key, &value]);
        expected.insert(key, value);
    }
    // Overwrites and deletes leave versions behind for compaction to drop.
    for i in (0..40).step_by(3) {
        let (key, value) = (format!("key{i:03}"), format!("again {i}"));
        ok(["put", p, &key, &value]);
        expected.insert(key, value);
    }
    for i in (1..40).step_by(7) {
        let key = format!("key{i:03}");
        ok(["del", p, &key]);
        expected.remove(&key);
    }

    let out = run(["compact", p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let summary = stderr(&out);
    assert!(summary.starts_with("compacted: "), "{summary}");
    assert!(summary.contains(", log "), "{summary}");
    assert_eq!(summary.lines().count(), 1, "{summary}");

    for (key, value) in &expected {
        assert_eq!(text(ok(["get", p, key])), *value, "{key}");
    }
    for i in (1..40).step_by(7) {
        let key = format!("key{i:03}");
        if !expected.contains_key(&key) {
            assert_eq!(run(["get", p, &key]).status.code(), Some(1), "{key}");
        }
    }

    let stat = json(ok(["stat", p, "--json"]));
    assert_eq!(stat["keys"], expected.len());
    let segments = stat["segments"].as_u64().unwrap();
    assert!(segments >= 1, "{stat}");
    assert_eq!(segments_after(&summary), segments, "{summary}");
    assert_eq!(level0_bytes(&stat), 0, "{stat}");
    assert_eq!(stat["sealed_memtable"], false);
    assert_eq!(stat["live_wal_bytes"], 0, "the whole log is in segments");

    // Compacting again is harmless and keeps what is there.
    ok(["compact", p]);
    assert_eq!(
        contents(&db.path),
        expected
            .iter()
            .map(|(k, v)| (k.clone().into_bytes(), v.clone().into_bytes()))
            .collect()
    );
}

#[test]
fn compact_merges_segments_flushed_by_a_small_memtable() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    {
        let lib = scribedb::Database::builder()
            .memtable_size(16 << 10)
            .open(&db.path)
            .unwrap();
        for batch in 0..32u32 {
            let mut txn = lib.begin_write().unwrap();
            for i in 0..64u32 {
                let key = format!("k{:05}", (batch * 64 + i) % 1500);
                txn.put(key.as_bytes(), [batch as u8; 100]).unwrap();
            }
            txn.commit().unwrap();
        }
        // Dropping the handle finishes any flush it owes.
    }
    let before = json(ok(["stat", p, "--json"]));
    assert!(before["segments"].as_u64().unwrap() >= 1, "{before}");

    let out = run(["compact", p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = json(ok(["stat", p, "--json"]));
    assert_eq!(after["keys"], before["keys"]);
    assert_eq!(after["keys"], 1500);
    let segments = after["segments"].as_u64().unwrap();
    assert!(segments >= 1, "{after}");
    assert_eq!(segments_after(&stderr(&out)), segments);
    assert_eq!(level0_bytes(&after), 0, "{after}");
    let on_levels: u64 = after["level_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .sum();
    assert!(on_levels > 0, "{after}");
    assert_eq!(text(ok(["get", p, "k00042"])).len(), 100);
}

#[test]
fn stat_shows_memtable_segments_log_and_space() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    // Empty: no data to compare the space with.
    ok(["put", p, "k", "v"]);
    ok(["del", p, "k"]);
    let stat = json(ok(["stat", p, "--json"]));
    for key in [
        "memtable_bytes",
        "memtable_budget",
        "segments",
        "log_start",
        "live_wal_bytes",
        "manifest_generation",
        "disk_bytes",
    ] {
        assert!(stat[key].is_u64(), "{key}: {stat}");
    }
    assert!(stat["sealed_memtable"].is_boolean(), "{stat}");
    assert!(stat["level_bytes"].is_array(), "{stat}");
    assert_eq!(stat["maintenance_error"], Value::Null);
    assert_eq!(stat["space_amplification"], Value::Null);
    assert!(stat["memtable_budget"].as_u64().unwrap() > 0);
    assert!(stat["disk_bytes"].as_u64().unwrap() > 0);
    let (wal, start) = (
        stat["wal_bytes"].as_u64().unwrap(),
        stat["log_start"].as_u64().unwrap(),
    );
    assert_eq!(stat["live_wal_bytes"].as_u64(), Some(wal - start));
    let table = text(ok(["stat", p]));
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
            .unwrap_or_else(|| panic!("no {name} row: {table}"))
            .to_string()
    };
    assert!(row("on disk").ends_with("space amplification -"), "{table}");
    assert!(row("memtable").contains(" of "), "{table}");
    assert!(row("maintenance").ends_with(" ok"), "{table}");
    assert!(row("segments").ends_with(" none"), "{table}");
    assert!(row("live wal").contains("cut below offset"), "{table}");

    // With data: the ratio of the space on disk to the live bytes.
    ok(["put", p, "key", "value"]);
    ok(["compact", p]);
    let stat = json(ok(["stat", p, "--json"]));
    let ratio = stat["space_amplification"].as_f64().unwrap();
    let expected = stat["disk_bytes"].as_f64().unwrap() / 8.0;
    assert!((ratio - expected).abs() < 1e-6 * expected, "{stat}");
    let table = text(ok(["stat", p]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("segments ") && l.contains(": L")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("on disk ") && l.ends_with('x')),
        "{table}"
    );
}

#[test]
fn compact_of_a_missing_database_fails() {
    let db = TestDb::new();
    let missing = db.sibling("missing");
    let err = fails(["compact", missing.to_str().unwrap()]);
    assert!(err.contains("no such database directory"), "{err}");
    assert!(!missing.exists(), "compact must not create a database");
    // Nor is a usage error a success.
    fails(["compact"]);
}

#[test]
fn check_passes_a_clean_database_and_names_the_damaged_file() {
    let db = fruit_db();
    let p = db.path.to_str().unwrap();
    let out = text(ok(["check", p]));
    assert!(out.contains("no problems found"), "{out}");
    let report = json(ok(["check", "--json", p]));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);
    // One load, one commit of six keys.
    assert_eq!(report["log_records"], 1, "{report}");
    assert_eq!(report["memtable_versions"], 6, "{report}");

    // A flipped byte in the payload of that commit's record, which only
    // the log and the memtable hold.
    let wal = db.path.join("wal");
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&wal)
        .unwrap();
    let at = 64 + 40 + 10;
    let mut b = [0u8];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, at).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[b[0] ^ 1], at).unwrap();
    drop(f);
    let out = run(["check", p]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let line = format!("{}:64: ", wal.display());
    assert!(stdout.contains(&line), "no line for the record: {stdout}");
    assert!(stderr(&out).contains("1 problem found"), "{}", stderr(&out));

    let out = run(["check", "--json", p]);
    assert_eq!(out.status.code(), Some(2));
    let report = json(out.stdout);
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["file"], wal.display().to_string());
    assert_eq!(problems[0]["offset"], 64);
}

/// The `committed_ts` and `committed_at` that `stat --json` shows.
fn committed(p: &str) -> (u64, String) {
    let stat = json(ok(["stat", p, "--json"]));
    (
        stat["committed_ts"].as_u64().unwrap(),
        stat["committed_at"].as_str().unwrap().to_string(),
    )
}

#[test]
fn as_of_reads_the_past_within_the_retention_window() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    ok(["put", p, "gone", "soon"]);
    ok(["retention", p, "1h"]);
    ok(["put", p, "k", "old"]);
    let (then, then_at) = committed(p);
    ok(["put", p, "k", "new"]);
    ok(["put", p, "added", "later"]);
    ok(["del", p, "gone"]);
    let then = then.to_string();

    assert_eq!(ok(["get", p, "k"]), b"new");
    assert_eq!(ok(["get", p, "k", "--as-of", &then]), b"old");
    // The RFC 3339 time of that commit reads the same state.
    assert_eq!(ok(["get", p, "k", "--as-of", &then_at]), b"old");
    let out = run(["get", p, "added", "--as-of", &then]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not there yet: {}",
        stderr(&out)
    );
    assert_eq!(ok(["get", p, "gone", "--as-of", &then]), b"soon");

    assert_eq!(
        text(ok(["scan", p, "--as-of", &then])),
        "gone\tsoon\nk\told\n"
    );
    assert_eq!(
        text(ok([
            "scan",
            p,
            "--as-of",
            &then,
            "--reverse",
            "--limit",
            "1"
        ])),
        "k\told\n"
    );
    assert_eq!(text(ok(["scan", p])), "added\tlater\nk\tnew\n");
    assert_eq!(
        text(ok(["dump", p, "--as-of", &then])),
        jsonl(&[("gone", "soon"), ("k", "old")])
    );

    // A moment after the newest commit, or now, reads the newest state.
    for future in ["2999-01-01T00:00:00Z", "2999-01-01T02:00:00.5+02:00", "0s"] {
        assert_eq!(ok(["get", p, "k", "--as-of", future]), b"new", "{future}");
        assert_eq!(
            text(ok(["dump", p, "--as-of", future])),
            jsonl(&[("added", "later"), ("k", "new")]),
            "{future}"
        );
    }
    let (newest, _) = committed(p);
    assert_eq!(
        ok(["get", p, "k", "--as-of", &(newest + 1).to_string()]),
        b"new"
    );

    // Before the window was set there is no history, however long it is.
    let err = fails(["get", p, "k", "--as-of", "1h"]);
    assert!(err.contains("retention window 1h"), "{err}");
}

#[test]
fn as_of_without_retention_fails_clearly() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    ok(["put", p, "k", "v1"]);
    let (first, _) = committed(p);
    ok(["put", p, "k", "v2"]);
    let (second, second_at) = committed(p);
    let first = first.to_string();
    for args in [
        vec!["get", p, "k", "--as-of", "1h"],
        vec!["get", p, "k", "--as-of", &first],
        vec!["scan", p, "--as-of", "10m"],
        vec!["dump", p, "--as-of", "1h30m"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("scribe: cannot read as of timestamp "),
            "{err}"
        );
        assert!(
            err.contains(&format!("history before timestamp {second} ({second_at})")),
            "{err}"
        );
        // Both timestamps are also shown as times.
        assert_eq!(err.matches("Z)").count(), 2, "{err}");
        assert!(err.contains("no retention window"), "{err}");
    }
    // The newest commit itself is readable without a window.
    assert_eq!(ok(["get", p, "k", "--as-of", &second.to_string()]), b"v2");

    // A WHEN that is none of the three forms is a usage error.
    for bad in [
        "soon",
        "2026-12-01",
        "2026-12-01T12:00:00",
        "-1",
        "99999999999999999999",
    ] {
        let err = fails(["get", p, "k", &format!("--as-of={bad}")]);
        assert!(err.contains("--as-of"), "{bad}: {err}");
    }
    let help = text(ok(["get", "--help"]));
    assert!(
        help.contains("only digits") && help.contains("RFC 3339") && help.contains("1h30m"),
        "{help}"
    );
}

#[test]
fn retention_prints_and_sets_the_stored_window() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    let missing = db.sibling("missing");
    fails(["retention", missing.to_str().unwrap(), "1h"]);
    assert!(!missing.exists(), "retention must not create a database");

    ok(["put", p, "k", "v"]);
    assert_eq!(text(ok(["retention", p])), "0\n");
    assert!(ok(["retention", p, "1h30m"]).is_empty());
    assert_eq!(text(ok(["retention", p])), "1h30m\n");
    // Stored with the database: other handles see it.
    let lib = scribedb::Database::builder()
        .create(false)
        .open(&db.path)
        .unwrap();
    assert_eq!(lib.retention().unwrap(), Duration::from_secs(5400));
    drop(lib);
    let stat = json(ok(["stat", p, "--json"]));
    assert_eq!(stat["retention_ms"], 5_400_000);
    let table = text(ok(["stat", p]));
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["retention", "1h30m"])),
        "{table}"
    );

    ok(["retention", p, "250ms"]);
    assert_eq!(text(ok(["retention", p])), "250ms\n");
    ok(["retention", p, "0"]);
    assert_eq!(text(ok(["retention", p])), "0\n");
    for bad in ["soon", "1500us", "-1h"] {
        fails(["retention", p, "--", bad]);
    }
    let err = fails(["retention", p, "200years"]);
    assert!(err.contains("retention"), "{err}");
    assert_eq!(text(ok(["retention", p])), "0\n");
}

#[test]
fn stat_shows_level0_compaction_history_and_stalls() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    ok(["put", p, "k", "v"]);
    let stat = json(ok(["stat", p, "--json"]));
    for key in [
        "level0_segments",
        "compaction_trigger",
        "pending_compaction_bytes",
        "retention_ms",
        "oldest_readable_ts",
    ] {
        assert!(stat[key].is_u64(), "{key}: {stat}");
    }
    assert_eq!(stat["level0_segments"], 0);
    assert!(stat["compaction_trigger"].as_u64().unwrap() >= 1);
    assert_eq!(stat["pending_compaction_bytes"], 0);
    assert_eq!(stat["retention_ms"], 0);
    // Without a window only the newest commit is readable.
    assert_eq!(stat["oldest_readable_ts"], stat["committed_ts"]);
    assert_eq!(stat["oldest_readable_at"], stat["committed_at"]);
    assert_eq!(stat["most_pinning_reader"], Value::Null);
    assert_eq!(stat["stalls"], serde_json::json!({"count": 0, "micros": 0}));

    let table = text(ok(["stat", p]));
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
            .unwrap_or_else(|| panic!("no {name} row: {table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let trigger = stat["compaction_trigger"].as_u64().unwrap();
    assert_eq!(
        row("level 0"),
        format!("level 0 0 segment(s), compaction at {trigger}")
    );
    assert_eq!(row("compaction due"), "compaction due none");
    assert_eq!(row("retention"), "retention none");
    assert_eq!(
        row("oldest readable"),
        format!(
            "oldest readable {} ({})",
            stat["oldest_readable_ts"],
            stat["oldest_readable_at"].as_str().unwrap()
        )
    );
    assert_eq!(row("most pinning"), "most pinning none");
    assert_eq!(row("stalls"), "stalls none");
    // The lines that were there before are still there.
    for name in ["committed", "gc horizon", "segments", "manifest", "on disk"] {
        row(name);
    }
}

#[test]
fn readers_and_stat_name_the_reader_pinning_retired_segments() {
    let db = TestDb::new();
    let p = db.path.to_str().unwrap();
    ok(["put", p, "a", "1"]);
    ok(["compact", p]);
    let lib = scribedb::Database::open(&db.path).unwrap();
    let txn = lib.begin_read().unwrap();
    let listed = readers(&db.path, &[]);
    let reader = &listed["readers"][0];
    assert_eq!(reader["pid"], std::process::id(), "{listed}");
    assert!(reader["view"].is_u64(), "{listed}");
    let generation = reader["manifest_generation"].as_u64().unwrap();
    assert_eq!(reader["pinned_bytes"], 0, "it reads the current manifest");
    assert_eq!(reader["most_pinning"], false);

    // A compaction replaces the segment the reader still reads.
    ok(["put", p, "b", "2"]);
    ok(["compact", p]);
    let listed = readers(&db.path, &[]);
    let reader = &listed["readers"][0];
    assert_eq!(reader["manifest_generation"], generation, "{listed}");
    let pinned = reader["pinned_bytes"].as_u64().unwrap();
    assert!(pinned > 0, "{listed}");
    assert_eq!(reader["most_pinning"], true, "{listed}");
    let table = text(ok(["readers", p]));
    assert!(
        table.contains("PINNED") && table.contains("pins the most"),
        "{table}"
    );

    let stat = json(ok(["stat", p, "--json"]));
    assert_eq!(
        stat["most_pinning_reader"],
        serde_json::json!({"slot": reader["slot"], "pid": std::process::id(), "pinned_bytes": pinned}),
        "{stat}"
    );
    let table = text(ok(["stat", p]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("most pinning")
                && l.contains(&format!("pid {}", std::process::id()))),
        "{table}"
    );
    // The reader still sees its snapshot.
    assert_eq!(txn.get(b"b").unwrap(), None);
    drop(txn);
    let stat = json(ok(["stat", p, "--json"]));
    assert_eq!(stat["most_pinning_reader"], Value::Null, "{stat}");
}

#[test]
fn put_refuses_a_directory_of_other_files_unless_asked() {
    let db = TestDb::new();
    std::fs::create_dir_all(&db.path).unwrap();
    std::fs::write(db.path.join("notes.txt"), b"mine").unwrap();
    let err = fails([raw(b"put"), db.path.as_os_str(), raw(b"k"), raw(b"v")]);
    assert!(err.contains("--create"), "{err}");
    let names: Vec<_> = std::fs::read_dir(&db.path).unwrap().flatten().collect();
    assert_eq!(names.len(), 1, "nothing was created beside the file");
    // Asked for, it goes ahead; and an existing database needs no flag.
    ok([
        raw(b"--create"),
        raw(b"put"),
        db.path.as_os_str(),
        raw(b"k"),
        raw(b"v"),
    ]);
    ok([raw(b"put"), db.path.as_os_str(), raw(b"k2"), raw(b"v2")]);
    assert_eq!(ok([raw(b"get"), db.path.as_os_str(), raw(b"k")]), b"v");
    // An empty directory is fine too.
    let empty = db.sibling("empty");
    std::fs::create_dir_all(&empty).unwrap();
    ok([raw(b"put"), empty.as_os_str(), raw(b"k"), raw(b"v")]);
}

#[test]
fn repair_opens_a_damaged_log_and_says_what_it_dropped() {
    let db = TestDb::new();
    for i in 0..3 {
        let (k, v) = (format!("k{i}"), "v".repeat(100));
        ok([
            raw(b"put"),
            db.path.as_os_str(),
            raw(k.as_bytes()),
            raw(v.as_bytes()),
        ]);
    }
    // Damage the first record's value; the two after it prove the log
    // went on, so this is never taken for a torn tail.
    let wal = db.path.join("wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    let at = bytes
        .windows(100)
        .position(|w| w == "v".repeat(100).as_bytes())
        .unwrap();
    bytes[at + 10] ^= 0x40;
    std::fs::write(&wal, &bytes).unwrap();
    for e in std::fs::read_dir(&db.path).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "coord" || name.ends_with(".arena") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let err = fails([raw(b"get"), db.path.as_os_str(), raw(b"k2")]);
    assert!(err.contains("repair"), "{err}");
    let out = run([
        raw(b"--repair"),
        raw(b"get"),
        db.path.as_os_str(),
        raw(b"k0"),
    ]);
    assert_eq!(out.status.code(), Some(1), "the damaged commit is gone");
    assert!(
        stderr(&out).contains("dropping 2 intact"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_damaged_coordination_file_is_rebuilt_and_said_so() {
    let db = TestDb::new();
    ok([raw(b"put"), db.path.as_os_str(), raw(b"k"), raw(b"v")]);
    // The file's magic: the next opener, alone, replaces it from the log.
    let coord = db.path.join("coord");
    let mut bytes = std::fs::read(&coord).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&coord, &bytes).unwrap();
    let out = run([raw(b"get"), db.path.as_os_str(), raw(b"k")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, b"v");
    assert!(
        stderr(&out).contains("coordination file was damaged"),
        "{}",
        stderr(&out)
    );
    // Once rebuilt, nothing more is said.
    let out = run([raw(b"get"), db.path.as_os_str(), raw(b"k")]);
    assert_eq!(stderr(&out), "");
}
