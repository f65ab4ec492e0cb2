//! `analyze`'s bucket statistics against Go bbolt 1.3.6's `Bucket.Stats()`, through
//! `tests/peer/boltpeer stats`: every field of every bucket, nested ones too.
//!
//! `committed_go::*` compare with the `NAME.stats.json` that Go wrote when the fixture was
//! made (always run). `live_go::*` run the Go peer now (on the committed files, on freshly
//! generated ones, and on the etcd db); without the peer they are listed as ignored with
//! the reason on stderr, unless BOLTPACK_REQUIRE_PEERS=1 makes that fatal. `cli::*` run
//! `boltpack analyze` on every fixture and check the input stays byte-identical.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use boltpack::analyze::bucket_stats;
use boltpack_report::hex;
use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

/// Go's `BucketStats` fields, in declaration order.
const FIELDS: [&str; 13] = [
    "BranchPageN",
    "BranchOverflowN",
    "LeafPageN",
    "LeafOverflowN",
    "KeyN",
    "Depth",
    "BranchAlloc",
    "BranchInuse",
    "LeafAlloc",
    "LeafInuse",
    "BucketN",
    "InlineBucketN",
    "InlineBucketInuse",
];

fn json_file(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// Our Go-aggregated figures of every bucket Go lists: (hex path, stats as JSON).
fn our_stats(db_path: &Path) -> Vec<(Vec<String>, Value)> {
    let db = open(db_path);
    let stats = bucket_stats(&db);
    assert!(
        stats.problems.is_empty(),
        "walk problems: {:?}",
        stats.problems
    );
    stats
        .listed()
        .iter()
        .map(|b| {
            (
                b.path.iter().map(|p| hex(p)).collect(),
                serde_json::to_value(b.go).unwrap(),
            )
        })
        .collect()
}

/// Go's `boltpeer stats` buckets: (hex path, stats).
fn go_buckets(stats: &Value) -> Vec<(Vec<String>, Value)> {
    stats["buckets"]
        .as_array()
        .expect("buckets array")
        .iter()
        .map(|b| {
            let path = b["bucket"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            (path, b["stats"].clone())
        })
        .collect()
}

/// Every field of every bucket, in Go's order; all differences in one message.
fn compare(ours: &[(Vec<String>, Value)], theirs: &[(Vec<String>, Value)]) -> Result<(), Failed> {
    let ours_paths: Vec<_> = ours.iter().map(|(p, _)| p).collect();
    let theirs_paths: Vec<_> = theirs.iter().map(|(p, _)| p).collect();
    if ours_paths != theirs_paths {
        return Err(format!(
            "bucket lists differ: ours {} buckets, Go {}; ours {ours_paths:?}, Go {theirs_paths:?}",
            ours.len(),
            theirs.len()
        )
        .into());
    }
    let mut diffs = Vec::new();
    for ((path, a), (_, b)) in ours.iter().zip(theirs) {
        let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
        let mut keys: Vec<_> = b.keys().collect();
        keys.sort();
        let mut want: Vec<_> = FIELDS.to_vec();
        want.sort();
        assert_eq!(keys, want, "Go's stats fields");
        for f in FIELDS {
            if a.get(f) != b.get(f) {
                diffs.push(format!(
                    "{path:?} {f}: ours {}, Go {}",
                    a.get(f).unwrap_or(&Value::Null),
                    b[f]
                ));
            }
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} fields differ from Go:\n{}",
            diffs.len(),
            diffs.join("\n")
        )
        .into())
    }
}

fn check_against(db: &Path, go_stats: &Value) -> Result<(), Failed> {
    let before = sha256_file(db);
    let theirs = go_buckets(go_stats);
    compare(&our_stats(db), &theirs)?;
    assert_eq!(before, sha256_file(db), "input file changed");
    Ok(())
}

fn committed_trial(name: &str, db: PathBuf) -> Trial {
    Trial::test(format!("committed_go::{name}"), move || {
        let stats = json_file(&db.with_extension("stats.json"));
        check_against(&db, &stats)
    })
}

fn peer_stats(db: &Path) -> Result<Value, Failed> {
    let out = run_peer(&["stats".as_ref(), db.as_os_str()])?;
    Ok(serde_json::from_str(&out).map_err(|e| e.to_string())?)
}

fn live_committed_trial(name: &str, db: PathBuf) -> Trial {
    Trial::test(format!("live_go::committed::{name}"), move || {
        check_against(&db, &peer_stats(&db)?)
    })
}

/// A fixture of shape `name` generated now by real bbolt, then compared.
fn live_fresh_trial(name: &str) -> Trial {
    let name = name.to_string();
    Trial::test(format!("live_go::fresh::{name}"), move || {
        let (_dir, db) = fresh_fixture(&name)?;
        check_against(&db, &peer_stats(&db)?)
    })
}

fn live_etcd_trial(file: &'static str) -> Trial {
    Trial::test(format!("live_go::etcd::{file}"), move || {
        let db = repo().join("testdata/etcd").join(file);
        let stats = peer_stats(&db)?;
        assert!(
            !go_buckets(&stats).is_empty(),
            "the etcd db has buckets (key, meta, …)"
        );
        check_against(&db, &stats)
    })
}

/// `boltpack analyze` (JSON and text) on a fixture: exit 0, the figures agree with the
/// committed Go stats when there are any, the input is untouched.
fn cli_trial(label: String, db: PathBuf, go_stats: Option<PathBuf>) -> Trial {
    Trial::test(format!("cli::analyze::{label}"), move || {
        let before = sha256_file(&db);
        let bin = env!("CARGO_BIN_EXE_boltpack");
        let o = Command::new(bin)
            .args(["analyze", "--json"])
            .arg(&db)
            .output()?;
        assert_eq!(
            o.status.code(),
            Some(0),
            "analyze --json: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_slice(&o.stdout).map_err(|e| e.to_string())?;
        assert_eq!(v["problems"], 0);
        let f = &v["file"];
        assert_eq!(f["file_size_bytes"], std::fs::metadata(&db)?.len());
        let ps = f["page_size_bytes"].as_u64().unwrap();
        let pages = |k: &str| f[k]["pages"].as_u64().unwrap();
        assert_eq!(
            pages("live") + pages("free") + pages("unreachable"),
            f["hwm_pages"]
                .as_u64()
                .unwrap()
                .min(f["file_size_bytes"].as_u64().unwrap() / ps),
            "live + free + unreachable = the pages below the hwm"
        );
        let runs_pages: u64 = f["free_runs"]["histogram"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["pages"].as_u64().unwrap())
            .sum();
        assert_eq!(runs_pages, pages("free"), "free runs cover the free pages");
        let tenth_free: u64 = f["free_by_tenth"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["free"]["pages"].as_u64().unwrap())
            .sum();
        assert_eq!(tenth_free, pages("free"), "tenths cover the free pages");
        let est = &f["defrag_estimate"];
        // The writer's own planner: exactly what `compact --dry-run` says.
        assert_eq!(est["exact"], true, "{est}");
        let dry = Command::new(bin)
            .args(["compact", "--dry-run", "--json", "--no-lock"])
            .arg(&db)
            .output()?;
        let dry: Value = serde_json::from_slice(&dry.stdout).map_err(|e| e.to_string())?;
        // The db's pages: a snapshot's copy also ends in the 32-byte SHA-256 trailer,
        // which `snapshot restore` strips.
        let dry_pages = dry["summary"]["dst_pages"].as_u64().unwrap()
            * dry["summary"]["page_size_bytes"].as_u64().unwrap();
        assert_eq!(
            est["bytes"], dry_pages,
            "analyze's defragmented size vs compact --dry-run"
        );
        let buckets = v["buckets"].as_array().unwrap();
        assert_eq!(
            buckets.len() as u64 + 1,
            v["total"]["BucketN"].as_u64().unwrap()
        );
        if let Some(p) = &go_stats {
            let go = json_file(p);
            assert_eq!(f["free"]["pages"], go["free_page_n"], "free pages vs Go");
            assert_eq!(f["hwm_pages"], go["hwm"]);
            let ours: Vec<(Vec<String>, Value)> = buckets
                .iter()
                .map(|b| {
                    let path = b["path_hex"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_string())
                        .collect();
                    (path, b["go"].clone())
                })
                .collect();
            compare(&ours, &go_buckets(&go))?;
        }
        let o = Command::new(bin).arg("analyze").arg(&db).output()?;
        assert_eq!(o.status.code(), Some(0));
        let text = String::from_utf8(o.stdout)?;
        assert!(text.contains("free runs"), "{text}");
        assert!(text.contains("defragmented"), "{text}");
        assert_eq!(before, sha256_file(&db), "input file changed");
        Ok(())
    })
}

fn main() {
    let args = Arguments::from_args();
    let fixtures = bbolt_fixtures();
    assert!(fixtures.len() >= 9, "testdata/bbolt fixtures missing");
    let mut trials = Vec::new();
    for (name, db) in &fixtures {
        trials.push(committed_trial(name, db.clone()));
        trials.push(cli_trial(
            format!("bbolt::{name}"),
            db.clone(),
            Some(db.with_extension("stats.json")),
        ));
    }
    for file in ["db", "snapshot.db"] {
        trials.push(cli_trial(
            format!("etcd::{file}"),
            repo().join("testdata/etcd").join(file),
            None,
        ));
    }

    let go = boltpeer_unless_listing(&args);
    let mut live = Vec::new();
    for (name, db) in &fixtures {
        live.push(live_committed_trial(name, db.clone()));
        live.push(live_fresh_trial(name));
    }
    live.push(live_etcd_trial("db"));
    live.push(live_etcd_trial("snapshot.db"));
    for t in live {
        trials.push(t.with_ignored_flag(go.is_err()));
    }
    gate_peer("Go bbolt peer", &go);
    libtest_mimic::run(&args, trials).exit();
}
