//! HashKV and `snapshot status` on the committed etcd 3.4.23 fixtures, against the answers
//! the real etcd gave when the fixtures were made (testdata/etcd/expected).

mod common;

use std::path::PathBuf;

use boltpack::etcd::KeyIndex;
use boltpack::etcd::Rules;
use boltpack::etcd::{EtcdMeta, Revisions};
use boltpack::etcd::{HashKvError, hash_kv};
use boltpack::etcd::{TrailerState, status, trailer};
use common::{open, repo, sha256_file};
use serde_json::Value;

fn etcd_dir() -> PathBuf {
    repo().join("testdata/etcd")
}

fn json(name: &str) -> Value {
    let p = etcd_dir().join("expected").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

const FILES: [&str; 2] = ["db", "snapshot.db"];

#[test]
fn meta_and_revisions() {
    let facts = json("facts.json");
    for f in FILES {
        let db = open(&etcd_dir().join(f));
        let m = EtcdMeta::read(&db).unwrap();
        assert_eq!(m.finished_compact_rev, Some(166), "{f}");
        assert_eq!(m.scheduled_compact_rev, Some(166), "{f}");
        assert!(m.consistent_index.unwrap() > 0, "{f}");
        assert_eq!(m.term, None, "3.4 writes no term");
        assert_eq!(m.conf_state, None);
        assert_eq!(m.storage_version, None);
        let (_, r) = Revisions::read(&db, &Rules::default()).unwrap();
        assert_eq!(r.current, facts["current_revision"].as_i64().unwrap());
        assert_eq!(r.compacted, facts["compacted_revision"].as_i64().unwrap());
        assert_eq!(r.last_key, Some(218));
        assert_eq!(r.resumed_compaction, None);
    }
    // The member db was stopped after the snapshot: its consistent_index is the raft
    // index the fixture script recorded at stop time or later.
    let db = open(&etcd_dir().join("db"));
    let ci = EtcdMeta::read(&db).unwrap().consistent_index.unwrap();
    assert!(
        ci >= facts["raft_index_at_record"].as_u64().unwrap() - 10,
        "{ci}"
    );
}

#[test]
fn hashkv_matches_etcd_3_4_23() {
    let facts = json("facts.json");
    let cases = [
        ("current", 0),
        ("current", 218),
        ("current_minus_1", 217),
        ("mid", 211),
        ("compacted_plus_1", 167),
    ];
    for f in FILES {
        let path = etcd_dir().join(f);
        let before = sha256_file(&path);
        let db = open(&path);
        for (tag, rev) in cases {
            let want = &facts["hashkv"][tag];
            let got = hash_kv(&db, rev, &Rules::default())
                .unwrap_or_else(|e| panic!("{f} rev {rev}: {e}"));
            assert_eq!(
                u64::from(got.hash),
                want["hash"].as_u64().unwrap(),
                "{f}: hashkv at {rev} ({tag})"
            );
            assert_eq!(
                got.compact_revision,
                want["compact_revision"].as_i64().unwrap()
            );
            assert_eq!(got.revision, want["header_revision"].as_i64().unwrap());
            assert_eq!(got.hash_revision, if rev == 0 { 218 } else { rev });
        }
        drop(db);
        assert_eq!(before, sha256_file(&path), "{f} changed");
    }
    // The committed JSON files themselves agree with facts.json.
    for (file, tag) in [
        ("hashkv-current.json", "current"),
        ("hashkv-current-minus-1.json", "current_minus_1"),
        ("hashkv-mid.json", "mid"),
        ("hashkv-compacted-plus-1.json", "compacted_plus_1"),
    ] {
        assert_eq!(
            json(file)[0]["HashKV"]["hash"],
            facts["hashkv"][tag]["hash"],
            "{file}"
        );
    }
}

#[test]
fn hashkv_at_compacted_revision_fails_on_3_4_23() {
    let facts = json("facts.json");
    assert_eq!(facts["hashkv_at_compacted_revision_fails"], true);
    let txt = std::fs::read_to_string(etcd_dir().join("expected/hashkv-compacted.txt")).unwrap();
    assert!(txt.starts_with("exit=1"), "{txt}");
    assert!(txt.contains("compacted"), "{txt}");
    for f in FILES {
        let db = open(&etcd_dir().join(f));
        for rev in [166, 165, 1] {
            match hash_kv(&db, rev, &Rules::default()) {
                Err(HashKvError::Compacted {
                    compact_revision: 166,
                    ..
                }) => {}
                other => panic!("{f} rev {rev}: {other:?}"),
            }
        }
        match hash_kv(&db, 219, &Rules::default()) {
            Err(HashKvError::FutureRevision {
                current_revision: 218,
                ..
            }) => {}
            other => panic!("{f} rev 219: {other:?}"),
        }
        // From 3.4.27 / 3.5.10 the compact revision itself may be hashed.
        let newer = Rules::for_version("3.5.10").unwrap();
        assert!(hash_kv(&db, 166, &newer).is_ok());
        assert!(hash_kv(&db, 165, &newer).is_err());
    }
}

#[test]
fn newer_rules_give_the_same_hashes_here() {
    // No tombstone sits at 166 in the file (3.4.23's compaction dropped it), so the newer
    // rules change nothing for these revisions.
    let facts = json("facts.json");
    let db = open(&etcd_dir().join("db"));
    let r36 = Rules::for_version("3.6.0").unwrap();
    for (tag, rev) in [("current", 218), ("mid", 211), ("compacted_plus_1", 167)] {
        let got = hash_kv(&db, rev, &r36).unwrap();
        assert_eq!(
            u64::from(got.hash),
            facts["hashkv"][tag]["hash"].as_u64().unwrap()
        );
    }
}

#[test]
fn key_index_counts() {
    let facts = json("facts.json");
    let db = open(&etcd_dir().join("db"));
    let ix = KeyIndex::build(&db, 218, &Rules::default()).unwrap();
    assert_eq!(
        ix.live_keys() as u64,
        facts["live_key_count"].as_u64().unwrap()
    );
    assert_eq!(
        ix.entries, 135,
        "key bucket entries after compaction (README)"
    );
    for k in facts["deleted_before_compaction_never_recreated"]
        .as_array()
        .unwrap()
    {
        let k = k.as_str().unwrap().as_bytes();
        assert!(
            ix.get(k).is_none_or(|s| !s.live),
            "{}",
            String::from_utf8_lossy(k)
        );
    }
}

#[test]
fn snapshot_status_matches_etcdctl() {
    let want = json("snapshot-status.json");
    let facts = json("facts.json");
    for f in FILES {
        let db = open(&etcd_dir().join(f));
        let s = status(&db).unwrap();
        assert_eq!(serde_json::to_value(s.etcdctl).unwrap(), want, "{f}");
        assert_eq!(u64::from(s.hash), want["hash"].as_u64().unwrap());
        assert_eq!(s.revision, want["revision"].as_i64().unwrap());
        assert_eq!(s.total_key, want["totalKey"].as_u64().unwrap());
        assert_eq!(s.total_size, want["totalSize"].as_u64().unwrap());
        assert_eq!(
            s.total_key_etcd36,
            facts["live_key_count"].as_u64().unwrap(),
            "3.6 meaning: live keys"
        );
        assert_eq!(s.file_size, facts["files"][f]["size"].as_u64().unwrap());
    }
}

#[test]
fn trailer_detection() {
    let snap = std::fs::read(etcd_dir().join("snapshot.db")).unwrap();
    let t = trailer(&snap);
    assert_eq!(t.state, TrailerState::Valid);
    assert_eq!(t.covered_bytes, Some(snap.len() as u64 - 32));
    let db = std::fs::read(etcd_dir().join("db")).unwrap();
    assert_eq!(trailer(&db).state, TrailerState::Absent);
    assert_eq!(
        status(&open(&etcd_dir().join("db"))).unwrap().trailer.state,
        TrailerState::Absent
    );

    // A corrupted trailer is invalid; the status itself still reads, since the trailer
    // lies past the high-water mark.
    let dir = tempfile::tempdir().unwrap();
    let mut bad = snap.clone();
    let n = bad.len();
    bad[n - 5] ^= 0x40;
    let p = dir.path().join("bad-trailer.db");
    std::fs::write(&p, &bad).unwrap();
    let s = status(&open(&p)).unwrap();
    assert_eq!(s.trailer.state, TrailerState::Invalid);
    assert_ne!(s.trailer.stored_sha256, s.trailer.computed_sha256);
    assert_eq!(
        serde_json::to_value(s.etcdctl).unwrap(),
        json("snapshot-status.json")
    );
    // So is an intact trailer over a changed body.
    let mut bad = snap.clone();
    bad[4096 + 100] ^= 1;
    assert_eq!(trailer(&bad).state, TrailerState::Invalid);
}

fn boltpack(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_boltpack"))
        .args(args)
        .output()
        .expect("run boltpack")
}

#[test]
fn cli_hashkv_and_exit_codes() {
    let facts = json("facts.json");
    let db = etcd_dir().join("snapshot.db");
    let db = db.to_str().unwrap();
    let o = boltpack(&["hashkv", db, "--rev", "211", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["hash"], facts["hashkv"]["mid"]["hash"]);
    assert_eq!(v["compact_revision"], 166);
    assert_eq!(v["revision"], 218);
    assert_eq!(v["hash_revision"], 211);
    assert_eq!(v["rules"]["version"], "3.4.23");

    let o = boltpack(&["hashkv", db]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("hash              2313191320"), "{text}");

    for (rev, what) in [
        ("166", "compacted"),
        ("219", "future revision"),
        ("-3", "negative"),
    ] {
        let o = boltpack(&["hashkv", db, "--rev", rev]);
        assert_eq!(o.status.code(), Some(1), "rev {rev}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(what), "rev {rev}: {err}");
        assert!(o.stdout.is_empty());
    }
    let o = boltpack(&["hashkv", db, "--rev", "166", "--etcd-version", "3.5.10"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "3.5.10 may hash the compact revision"
    );
    let o = boltpack(&["hashkv", db, "--etcd-version", "4.0"]);
    assert_eq!(o.status.code(), Some(2));
    let flat = repo().join("testdata/bbolt/flat.db");
    let o = boltpack(&["hashkv", flat.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "not an etcd file");
}

#[test]
fn cli_snapshot_status() {
    let want = json("snapshot-status.json");
    for f in FILES {
        let p = etcd_dir().join(f);
        let o = boltpack(&["snapshot", "status", p.to_str().unwrap(), "--json"]);
        assert_eq!(o.status.code(), Some(0), "{f}");
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["etcdctl"], want, "{f}");
        assert_eq!(v["check_problems"], 0);
        let state = if f == "db" { "absent" } else { "valid" };
        assert_eq!(v["trailer"]["state"], state, "{f}");
    }
    let o = boltpack(&[
        "snapshot",
        "status",
        etcd_dir().join("snapshot.db").to_str().unwrap(),
    ]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("hash              3374493795 (0xc922b063)"),
        "{text}"
    );
    assert!(text.contains("sha256 trailer    valid"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let mut bad = std::fs::read(etcd_dir().join("snapshot.db")).unwrap();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let p = dir.path().join("bad.db");
    std::fs::write(&p, &bad).unwrap();
    let o = boltpack(&["snapshot", "status", p.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["trailer"]["state"], "invalid");
    assert_eq!(v["etcdctl"], want);
    assert!(String::from_utf8_lossy(&o.stderr).contains("trailer does not match"));
}
