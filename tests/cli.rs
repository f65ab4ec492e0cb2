//! The `boltpack` binary as a user runs it: output, exit codes (README "Exit codes"),
//! lock refusal, and inputs left byte-identical.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{bbolt_fixtures, boltpack, path_str as s, sha256_file};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    common::testdata(name)
}

fn stdout_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn info_reports_metas_and_pages() {
    let db = fixture("bbolt/flat.db");
    let o = boltpack(&["info", "--json", s(&db)]);
    assert_eq!(o.status.code(), Some(0));
    let v = stdout_json(&o);
    assert_eq!(v["page_size_bytes"], 4096);
    assert_eq!(v["hwm_pages"], 61);
    assert_eq!(v["pages"]["free"], 27);
    assert_eq!(v["freelist"], "page");
    assert_eq!(
        v["metas"][v["active_meta"].as_u64().unwrap() as usize]["txid"],
        6
    );
    assert_eq!(v["metas"][0]["valid"], true);

    let o = boltpack(&["info", s(&fixture("etcd/db"))]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("page size      4096"), "{text}");
    assert!(text.contains("NoFreelistSync"), "{text}");
}

#[test]
fn snapshot_trailer_is_reported_as_bytes_past_the_high_water_mark() {
    let o = boltpack(&["info", s(&fixture("etcd/snapshot.db"))]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(32 bytes past it"));
}

#[test]
fn check_is_clean_on_every_fixture_and_inputs_stay_unchanged() {
    let mut files: Vec<PathBuf> = bbolt_fixtures().into_iter().map(|(_, p)| p).collect();
    files.push(fixture("etcd/db"));
    files.push(fixture("etcd/snapshot.db"));
    for f in files {
        let before = sha256_file(&f);
        let o = boltpack(&["check", s(&f)]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("ok:"));
        for args in [
            &["info", "--json"][..],
            &["dump", "--hash-values"],
            &["pages"],
            &["page"],
        ] {
            let mut a = args.to_vec();
            a.push(s(&f));
            if args == ["page"] {
                a.push("2");
            }
            let o = boltpack(&a);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{a:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert_eq!(before, sha256_file(&f), "{} was modified", f.display());
    }
}

#[test]
fn check_reports_page_and_offset_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("bbolt/flat.db");
    let mut bytes = std::fs::read(&src).unwrap();
    // Give the root page (meta says 59) a wrong header id.
    let root = 59usize;
    bytes[root * 4096] ^= 0x40;
    let bad = dir.path().join("bad.db");
    std::fs::write(&bad, &bytes).unwrap();
    let o = boltpack(&["check", s(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains(&format!("page 59 (byte offset {})", 59 * 4096)),
        "{out}"
    );
    let o = boltpack(&["check", "--json", s(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    let v = stdout_json(&o);
    assert_eq!(v["ok"], false);
    let first = &v["problems"][0];
    assert!(
        first["page"].is_u64() && first["byte_offset"].is_u64(),
        "{v}"
    );
    assert!(
        first["kind"].is_string() && first["what"].is_string(),
        "{v}"
    );
}

#[test]
fn not_a_bbolt_file_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![0x5a; 20000]).unwrap();
    let o = boltpack(&["info", s(&junk)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no valid meta page"));

    let tiny = dir.path().join("tiny");
    std::fs::write(&tiny, b"hello").unwrap();
    let o = boltpack(&["check", s(&tiny)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("too small"));

    let o = boltpack(&["info", s(&dir.path().join("nope"))]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such file"));

    let o = boltpack(&["info"]);
    assert_eq!(o.status.code(), Some(2), "usage error");
}

#[test]
fn refuses_a_db_held_by_a_writer_unless_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::copy(fixture("bbolt/flat.db"), &db).unwrap();
    // bbolt (and so etcd) holds an exclusive flock on an open read-write db.
    let holder = std::fs::File::open(&db).unwrap();
    holder.lock().unwrap();
    let o = boltpack(&["info", s(&db)]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("locked by another process"));
    let o = boltpack(&["info", "--no-lock", s(&db)]);
    assert_eq!(o.status.code(), Some(0));
    holder.unlock().unwrap();
    assert_eq!(boltpack(&["info", s(&db)]).status.code(), Some(0));
}

#[test]
fn dump_prints_json_lines_in_key_order() {
    let db = fixture("bbolt/flat.db");
    let o = boltpack(&["dump", s(&db), "flat"]);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<Value> = o
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2000);
    let keys: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(lines[0]["bucket"], serde_json::json!(["flat"]));

    // Binary names and values come as {"hex": ...}.
    let o = boltpack(&["dump", s(&fixture("bbolt/nested.db"))]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains(r#"{"bucket":[{"hex":"00ff1080"}],"inline":true,"#)
            || text.contains(r#""hex":"00ff1080""#)
    );

    let o = boltpack(&["dump", s(&db), "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no bucket nope"));
}

#[test]
fn dump_etcd_decodes_revisions_and_key_values() {
    let o = boltpack(&["dump", "--etcd", s(&fixture("etcd/db")), "key"]);
    assert_eq!(o.status.code(), Some(0));
    let mut last = (0, 0);
    let mut tombstones = 0;
    for l in o.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(l).unwrap();
        let r = &v["revision"];
        let rev = (r["main"].as_i64().unwrap(), r["sub"].as_i64().unwrap());
        assert!(rev > last, "revisions ascend");
        last = rev;
        if r["tombstone"] == true {
            tombstones += 1;
        } else {
            assert_eq!(v["kv"]["mod_revision"].as_i64().unwrap(), rev.0);
        }
    }
    assert_eq!(last.0, 218, "the fixture's current revision");
    assert!(tombstones > 0);
}

#[test]
fn pages_lists_every_page_and_page_decodes_one() {
    let db = fixture("bbolt/deletes.db");
    let o = boltpack(&["pages", "--json", s(&db)]);
    assert_eq!(o.status.code(), Some(0));
    let v = stdout_json(&o);
    let pages = v["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 119);
    let count = |k: &str| pages.iter().filter(|p| p["type"] == k).count();
    assert_eq!(count("meta"), 2);
    assert_eq!(count("freelist"), 1);
    assert_eq!(count("free"), 59);
    assert!(
        pages
            .iter()
            .filter(|p| p["type"] == "leaf")
            .all(|p| p["bucket"].is_string())
    );

    let o = boltpack(&["page", s(&db), "0"]);
    let v = stdout_json(&o);
    assert_eq!(v["type"], "meta");
    assert_eq!(v["meta"]["magic"], "ed0cdaed");
    let o = boltpack(&["page", s(&db), "71"]);
    assert_eq!(stdout_json(&o)["type"], "freelist");
    let o = boltpack(&["page", s(&db), "100000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("beyond the high-water mark"));
}

/// Run boltpack with its stdout a pipe whose reader is already gone: every write fails
/// with EPIPE, as after `| head -1` (Rust ignores SIGPIPE).
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    std::process::Command::new(env!("CARGO_BIN_EXE_boltpack"))
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run boltpack")
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_commands_own_exit_code() {
    let db = fixture("etcd/db");
    for args in [
        vec!["dump", s(&db), "--no-lock"],
        vec!["info", s(&db), "--no-lock"],
        vec!["pages", s(&db), "--json", "--no-lock"],
        vec!["analyze", s(&db), "--no-lock"],
        vec!["check", s(&db), "--no-lock"],
        vec!["hashkv", s(&db), "--no-lock"],
    ] {
        let o = with_closed_stdout(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&o.stderr), "", "{args:?}: quiet");
    }
    // A command that found problems still says so by its exit code.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-trailer.db");
    let mut bytes = std::fs::read(fixture("etcd/snapshot.db")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bad, bytes).unwrap();
    let o = with_closed_stdout(&["snapshot", "status", s(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    let mut flat = std::fs::read(fixture("bbolt/flat.db")).unwrap();
    flat[59 * 4096] ^= 0x40; // the root page's header id, as above
    let bad = dir.path().join("bad.db");
    std::fs::write(&bad, flat).unwrap();
    let o = with_closed_stdout(&["check", s(&bad)]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "check's problems survive a closed stdout"
    );
    // And in a real pipeline under pipefail.
    let o = std::process::Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            "\"$0\" dump \"$1\" --no-lock | head -1 >/dev/null",
        ])
        .arg(env!("CARGO_BIN_EXE_boltpack"))
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
}

/// etcdctl's `-w json` is `--json`, on every command that prints JSON; `-w table` and
/// `-w simple` are the text.
#[test]
fn write_out_json_is_the_json_flag() {
    let db = fixture("etcd/db");
    for cmd in [
        &["info"][..],
        &["check"],
        &["pages"],
        &["hashkv"],
        &["snapshot", "status"],
        &["analyze"],
        &["compact", "--dry-run"],
    ] {
        let run = |extra: &[&str]| {
            let mut args: Vec<&str> = cmd.to_vec();
            args.push(s(&db));
            args.extend(extra);
            let o = boltpack(&args);
            assert_eq!(o.status.code(), Some(0), "{args:?}");
            o.stdout
        };
        let json = run(&["--json"]);
        let mut w = stdout_json_bytes(&run(&["-w", "json"]));
        let mut j = stdout_json_bytes(&json);
        // compact's report carries its own timing.
        for v in [&mut w, &mut j] {
            if let Some(o) = v.as_object_mut() {
                o.remove("elapsed_seconds");
            }
        }
        assert_eq!(w, j, "{cmd:?}");
        assert_eq!(run(&["-w", "table"]), run(&["-w", "simple"]), "{cmd:?}");
        assert_ne!(run(&["-w", "table"]), json, "{cmd:?}");
    }
}

fn stdout_json_bytes(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

/// A data dir, a member dir, a WAL file, a raft snapshot: each is named for what it is,
/// with the path to pass instead (exit 2).
#[test]
fn path_mistakes_get_a_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("member/snap")).unwrap();
    std::fs::create_dir_all(data.join("member/wal")).unwrap();
    std::fs::copy(fixture("etcd/db"), data.join("member/snap/db")).unwrap();
    let wal = data.join("member/wal/0000000000000000-0000000000000000.wal");
    let snap = data.join("member/snap/0000000000000002-0000000000000005.snap");
    std::fs::write(&wal, b"not a db").unwrap();
    std::fs::write(&snap, b"not a db").unwrap();
    let db = data.join("member/snap/db");
    let cases: [(&std::path::Path, &str); 5] = [
        (&data, "pass "),
        (&data.join("member"), "--data-dir "),
        (&wal, "is an etcd WAL file"),
        (&snap, "is a raft snapshot file"),
        (dir.path(), "is a directory: pass a db file"),
    ];
    for (path, says) in cases {
        for cmd in [&["analyze"][..], &["check"], &["compact", "--dry-run"]] {
            let mut args = cmd.to_vec();
            args.push(s(path));
            let o = boltpack(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }
    let o = boltpack(&["analyze", s(&data)]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(s(&db)),
        "names the db to pass"
    );
    // -o: a directory is said to be one; an error names the user's path, not the temp file.
    let o = boltpack(&[
        "compact",
        s(&db),
        "-o",
        &format!("{}/", dir.path().display()),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a directory"));
    let missing = dir.path().join("nowhere/copy.db");
    let o = boltpack(&["compact", s(&db), "-o", s(&missing)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.starts_with(&format!("boltpack: {}: ", missing.display())),
        "{err}"
    );
}

/// `completions bash` gives a script bash sources and that completes the subcommands.
#[test]
fn bash_completion_script_loads() {
    let o = boltpack(&["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("boltpack.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p boltpack && COMP_WORDS=(boltpack ana) && COMP_CWORD=1 && _boltpack boltpack ana boltpack && echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(out.contains("-F _boltpack boltpack"), "{out}");
    assert!(out.contains("analyze"), "completes `ana` to analyze: {out}");
}
