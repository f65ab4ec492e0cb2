//! Our reader against the real implementations: Go bbolt 1.3.6 (through
//! `tests/peer/boltpeer`) and etcd 3.4 (through `tests/peer/etcd-lib.sh`).
//!
//! Trials on committed fixtures compare with outputs the real peers wrote when the fixture
//! was made (always run). `live::` trials run the peers now; without them they are listed
//! as ignored, with the reason on stderr, unless BOLTPACK_REQUIRE_PEERS=1 makes that fatal.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use boltpack::Bucket;
use boltpack::etcd::{KeyValue, RevisionKey};
use boltpack::reader::PageMap;
use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

/// User key -> (create_revision, mod_revision, version, value, lease).
type EtcdState = BTreeMap<Vec<u8>, (i64, i64, i64, Vec<u8>, i64)>;

fn json_file(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

fn read_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// Compare our view of `db` with Go's dump / stats / meta JSON (committed or live).
fn compare_with_go(
    db_path: &Path,
    dump: &[String],
    stats: &Value,
    meta: &Value,
) -> Result<(), Failed> {
    let before = sha256_file(db_path);
    let db = open(db_path);
    assert_lines_eq(&logical_dump(&db), dump, "logical dump vs Go");
    let m = db.meta();
    assert_eq!(
        u64::from(db.page_size()),
        meta["page_size"].as_u64().unwrap(),
        "page size"
    );
    assert_eq!(m.txid, meta["txid"].as_u64().unwrap(), "txid");
    assert_eq!(m.root.root, meta["root"].as_u64().unwrap(), "root");
    assert_eq!(m.freelist, meta["freelist"].as_u64().unwrap(), "freelist");
    assert_eq!(db.hwm(), meta["hwm"].as_u64().unwrap(), "hwm");
    assert_eq!(db.hwm(), stats["hwm"].as_u64().unwrap(), "hwm (tx.Size)");
    let map = PageMap::build(&db);
    let counts = map.counts();
    assert_eq!(
        counts.free,
        stats["free_page_n"].as_u64().unwrap(),
        "free pages vs Go FreePageN"
    );
    assert_eq!(counts.unreachable, 0);
    let problems = boltpack::check::check(&db);
    assert!(problems.is_empty(), "check found problems: {problems:?}");
    drop(db);
    assert_eq!(before, sha256_file(db_path), "input file changed");
    Ok(())
}

fn committed_trial(name: &str, db: PathBuf) -> Trial {
    Trial::test(format!("committed_go::{name}"), move || {
        let base = db.with_extension("");
        let b = base.display();
        compare_with_go(
            &db,
            &read_lines(Path::new(&format!("{b}.dump.jsonl"))),
            &json_file(Path::new(&format!("{b}.stats.json"))),
            &json_file(Path::new(&format!("{b}.meta.json"))),
        )
    })
}

fn peer_json(cmd: &str, db: &Path) -> Result<Value, Failed> {
    Ok(
        serde_json::from_str(&run_peer(&[cmd.as_ref(), db.as_os_str()])?)
            .map_err(|e| e.to_string())?,
    )
}

fn live_compare(db: &Path) -> Result<(), Failed> {
    let dump: Vec<String> = run_peer(&["dump".as_ref(), db.as_os_str()])?
        .lines()
        .map(String::from)
        .collect();
    let check = run_peer(&["check".as_ref(), db.as_os_str()])?;
    assert_eq!(check.trim(), "ok", "Go tx.Check()");
    compare_with_go(db, &dump, &peer_json("stats", db)?, &peer_json("meta", db)?)
}

/// Fresh fixtures of every shape, generated now by real bbolt, then compared.
fn live_fresh_trial(name: &str) -> Trial {
    let name = name.to_string();
    Trial::test(format!("live_go::fresh::{name}"), move || {
        let (_dir, db) = fresh_fixture(&name)?;
        live_compare(&db)
    })
}

/// etcd's view at revision `rev` from our walk of the `key` bucket: per user key, the
/// newest entry with main <= rev; live when it is not a tombstone.
fn etcd_state(db: &boltpack::Db, rev: i64) -> EtcdState {
    let key = Bucket::root_of(db)
        .bucket(b"key")
        .unwrap()
        .expect("key bucket");
    let mut state = BTreeMap::new();
    for e in key.iter() {
        let e = e.unwrap();
        let r = RevisionKey::parse(e.key).unwrap();
        if r.main > rev {
            break;
        }
        let kv = KeyValue::decode(e.value).unwrap();
        if r.tombstone {
            state.remove(kv.key);
        } else {
            assert_eq!(
                kv.mod_revision, r.main,
                "mod_revision equals the revision key"
            );
            state.insert(
                kv.key.to_vec(),
                (
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                    kv.value.to_vec(),
                    kv.lease,
                ),
            );
        }
    }
    state
}

fn etcd_get_json(v: &Value) -> EtcdState {
    let b64 = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .unwrap()
    };
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    v["kvs"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|kv| {
            (
                b64(&kv["key"]),
                (
                    int(&kv["create_revision"]),
                    int(&kv["mod_revision"]),
                    int(&kv["version"]),
                    b64(&kv["value"]),
                    int(&kv["lease"]),
                ),
            )
        })
        .collect()
}

fn etcd_committed_trials() -> Vec<Trial> {
    let dir = repo().join("testdata/etcd");
    let facts = json_file(&dir.join("expected/facts.json"));
    let mut v = Vec::new();
    for file in [
        "get-current.json",
        "get-current-minus-1.json",
        "get-mid.json",
        "get-compacted.json",
    ] {
        let rev = facts["revisions_of_expected_gets"][file].as_i64().unwrap();
        for db in ["db", "snapshot.db"] {
            let (dir, file) = (dir.clone(), file.to_string());
            v.push(Trial::test(
                format!("committed_etcd::{db}::get_at_{rev}"),
                move || {
                    let path = dir.join(db);
                    let before = sha256_file(&path);
                    let ours = etcd_state(&open(&path), rev);
                    let theirs = etcd_get_json(&json_file(&dir.join("expected").join(&file)));
                    assert_eq!(ours.len(), theirs.len(), "live key count at {rev}");
                    assert!(
                        ours == theirs,
                        "kvs at revision {rev} differ from etcd's answer"
                    );
                    assert_eq!(before, sha256_file(&path));
                    Ok(())
                },
            ));
        }
    }
    for db in ["db", "snapshot.db"] {
        let dir = dir.clone();
        v.push(Trial::test(
            format!("committed_etcd::{db}::check_clean"),
            move || {
                let db = open(&dir.join(db));
                let p = boltpack::check::check(&db);
                assert!(p.is_empty(), "{p:?}");
                assert!(boltpack::etcd::is_etcd(&db));
                Ok(())
            },
        ));
    }
    v
}

/// Start a real etcd on our etcd fixture and compare its answer with our reading.
fn live_etcd_trial() -> Trial {
    Trial::test("live_etcd::restore_and_get_matches_reader", || {
        let work = tempfile::tempdir()?;
        let db = repo().join("testdata/etcd/db");
        let script = format!(
            "set -euo pipefail; source '{}'; etcd_restore_and_start '{}' '{}' >/dev/null; etcdctl_local get '' --prefix -w json",
            repo().join("tests/peer/etcd-lib.sh").display(),
            db.display(),
            work.path().display()
        );
        let out = Command::new("timeout")
            .args(["120", "bash", "-c", &script])
            .output()?;
        if !out.status.success() {
            return Err(format!("etcd: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let theirs =
            etcd_get_json(&serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?);
        let d = open(&db);
        let ours = etcd_state(&d, i64::MAX);
        assert!(!ours.is_empty());
        assert!(
            ours == theirs,
            "a real etcd serving this file answers differently"
        );
        Ok(())
    })
}

/// A running etcd holds an exclusive flock on its db: boltpack must refuse it (exit 4).
fn live_etcd_lock_trial() -> Trial {
    Trial::test("live_etcd::refuses_db_of_running_etcd", || {
        let work = tempfile::tempdir()?;
        let script = format!(
            "set -euo pipefail; source '{lib}'; etcd_restore_and_start '{db}' '{w}' >/dev/null; \
             set +e; '{bp}' info '{w}/data/member/snap/db' >/dev/null 2>'{w}/err'; echo $?; \
             '{bp}' check --no-lock '{w}/data/member/snap/db' >/dev/null 2>&1; echo $?",
            lib = repo().join("tests/peer/etcd-lib.sh").display(),
            db = repo().join("testdata/etcd/db").display(),
            w = work.path().display(),
            bp = env!("CARGO_BIN_EXE_boltpack"),
        );
        let out = Command::new("timeout")
            .args(["120", "bash", "-c", &script])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let codes: Vec<&str> = text.lines().collect();
        assert_eq!(
            codes.first().copied(),
            Some("4"),
            "exit code while etcd runs: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = std::fs::read_to_string(work.path().join("err"))?;
        assert!(err.contains("locked by another process"), "{err}");
        // --no-lock reads it anyway (a live db may be mid-write; here it is idle).
        assert_eq!(codes.get(1).copied(), Some("0"), "{text}");
        Ok(())
    })
}

/// The freelist count escape (>= 0xFFFF ids): ~280 MiB, made by real bbolt on demand.
fn live_large_trial() -> Trial {
    Trial::test("live_go::large::many_free", || {
        let dir = tempfile::tempdir()?;
        let out = Command::new("bash")
            .arg(repo().join("testdata/make-bbolt-fixtures.sh"))
            .arg("--large")
            .arg(dir.path())
            .env("BOLTPEER", boltpeer()?)
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "make-bbolt-fixtures.sh --large: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let db = dir.path().join("many-free.db");
        let d = open(&db);
        let page = d.page(d.meta().freelist)?;
        assert_eq!(
            page.header.count, 0xFFFF,
            "the fixture must use the count escape"
        );
        drop(d);
        let b = dir.path().join("many-free");
        let b = b.display();
        compare_with_go(
            &db,
            &read_lines(Path::new(&format!("{b}.dump.jsonl"))),
            &json_file(Path::new(&format!("{b}.stats.json"))),
            &json_file(Path::new(&format!("{b}.meta.json"))),
        )
    })
}

fn etcd_available() -> Result<(), String> {
    etcd_version().map(|_| ())
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    let fixtures = bbolt_fixtures();
    assert!(fixtures.len() >= 9, "testdata/bbolt fixtures missing");
    for (name, db) in &fixtures {
        trials.push(committed_trial(name, db.clone()));
    }
    trials.extend(etcd_committed_trials());

    let go = boltpeer_unless_listing(&args);
    let etcd = etcd_available();
    let mut live = Vec::new();
    for (name, db) in &fixtures {
        let db = db.clone();
        live.push((
            Trial::test(format!("live_go::committed::{name}"), move || {
                live_compare(&db)
            }),
            &go,
        ));
        live.push((live_fresh_trial(name), &go));
    }
    let etcd_db = repo().join("testdata/etcd/db");
    live.push((
        Trial::test("live_go::etcd_db", move || live_compare_etcd(&etcd_db)),
        &go,
    ));
    let etcd_go = etcd.clone().and(go.clone().map(|_| ()));
    let etcd_trial = live_etcd_trial();
    for (t, avail) in live {
        trials.push(t.with_ignored_flag(avail.is_err()));
    }
    trials.push(etcd_trial.with_ignored_flag(etcd_go.is_err()));
    trials.push(live_etcd_lock_trial().with_ignored_flag(etcd.is_err()));
    // Large generated fixtures only when asked (CI sets it): they take minutes and 280 MiB.
    let large = std::env::var("BOLTPACK_LARGE_FIXTURES").is_ok_and(|v| v == "1");
    trials.push(live_large_trial().with_ignored_flag(go.is_err() || !large));

    for (what, r) in [
        ("Go bbolt peer", go.as_ref().map(|_| ())),
        ("etcd peer", etcd.as_ref().map(|_| ())),
    ] {
        gate_peer(what, &r);
    }
    libtest_mimic::run(&args, trials).exit();
}

/// The etcd member db through Go: same logical content and check.
fn live_compare_etcd(db: &Path) -> Result<(), Failed> {
    let dump: Vec<String> = run_peer(&["dump".as_ref(), db.as_os_str()])?
        .lines()
        .map(String::from)
        .collect();
    let d = open(db);
    assert_lines_eq(&logical_dump(&d), &dump, "etcd db dump vs Go");
    assert_eq!(run_peer(&["check".as_ref(), db.as_os_str()])?.trim(), "ok");
    let stats = peer_json("stats", db)?;
    assert_eq!(
        PageMap::build(&d).counts().free,
        stats["free_page_n"].as_u64().unwrap()
    );
    Ok(())
}
