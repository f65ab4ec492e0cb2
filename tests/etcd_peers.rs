//! `boltpack hashkv` and `boltpack snapshot status` against a real etcd, now.
//!
//! `tests/peer/etcd-hashkv-history.sh` starts a fresh etcd on loopback, writes a history
//! (puts, overwrites, deletes, a DeleteRange, txns, two online compactions, one of them at
//! a tombstone), and records `etcdctl endpoint hashkv --rev R -w json` for many R and
//! `etcdctl snapshot status -w json` at three points, each with a `snapshot save`; at the
//! end it stops etcd and keeps the member db. Every answer must equal ours on those files.
//!
//! Without etcd the trials are listed as ignored, with the reason on stderr; with
//! BOLTPACK_REQUIRE_PEERS=1 that is a failure instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{etcd_version, gate_peer, repo, sha256_file};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const PHASES: [&str; 3] = ["a", "b", "final"];

/// Run the history script once for all trials; its output directory.
fn history() -> Result<PathBuf, String> {
    static RUN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    RUN.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("etcd-hashkv-live");
        let _ = std::fs::remove_dir_all(&out);
        let o = Command::new("timeout")
            .arg("300")
            .arg("bash")
            .arg(repo().join("tests/peer/etcd-hashkv-history.sh"))
            .arg(&out)
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(format!(
                "etcd-hashkv-history.sh failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(out)
    })
    .clone()
}

fn boltpack(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_boltpack"))
        .args(args)
        .output()
        .expect("run boltpack")
}

fn read(p: &Path) -> Result<String, Failed> {
    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()).into())
}

/// Every recorded `endpoint hashkv` answer of `phase` against `boltpack hashkv` on `file`.
fn compare_hashkv(phase: &str, file: &str, version: &str) -> Result<(), Failed> {
    let dir = history()?.join(phase);
    let db = dir.join(file);
    let db_s = db.to_str().unwrap();
    let before = sha256_file(&db);
    let mut answers: Vec<PathBuf> = std::fs::read_dir(dir.join("hashkv"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    answers.sort();
    let (mut ok, mut failed) = (0, 0);
    for a in &answers {
        let rev = a.file_stem().unwrap().to_str().unwrap();
        let o = boltpack(&[
            "hashkv",
            db_s,
            "--rev",
            rev,
            "--json",
            "--etcd-version",
            version,
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        if a.extension().is_some_and(|x| x == "json") {
            let theirs: Value = serde_json::from_str(&read(a)?)?;
            let theirs = &theirs[0]["HashKV"];
            if o.status.code() != Some(0) {
                return Err(format!(
                    "{phase}/{file} rev {rev}: etcd answered, we failed: {stderr}"
                )
                .into());
            }
            let ours: Value = serde_json::from_slice(&o.stdout)?;
            let int = |v: &Value| v.as_i64().unwrap_or(0); // JSON omits zero fields
            assert_eq!(
                ours["hash"], theirs["hash"],
                "{phase}/{file}: hashkv at rev {rev}"
            );
            assert_eq!(
                int(&ours["compact_revision"]),
                int(&theirs["compact_revision"]),
                "{phase}/{file}: compact revision at rev {rev}"
            );
            assert_eq!(
                int(&ours["revision"]),
                int(&theirs["header"]["revision"]),
                "{phase}/{file}: current revision"
            );
            ok += 1;
        } else {
            let theirs = read(a)?;
            assert!(!theirs.starts_with("exit=0"), "{theirs}");
            assert_eq!(
                o.status.code(),
                Some(1),
                "{phase}/{file} rev {rev}: etcd failed ({theirs}), we answered {}",
                String::from_utf8_lossy(&o.stdout)
            );
            for what in ["compacted", "future revision"] {
                assert_eq!(
                    theirs.contains(what),
                    stderr.contains(what),
                    "{phase}/{file} rev {rev}: etcd says {theirs:?}, we say {stderr:?}"
                );
            }
            failed += 1;
        }
    }
    assert!(
        ok >= 4 && failed >= 1,
        "too few answers: {ok} ok, {failed} errors"
    );
    assert_eq!(before, sha256_file(&db), "{file} changed");
    Ok(())
}

/// `etcdctl snapshot status -w json` (`status_file`) against `boltpack snapshot status`.
fn compare_status(phase: &str, file: &str, status_file: &str, trailer: &str) -> Result<(), Failed> {
    let dir = history()?.join(phase);
    let theirs: Value = serde_json::from_str(&read(&dir.join(status_file))?)?;
    let o = boltpack(&[
        "snapshot",
        "status",
        dir.join(file).to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ours: Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(ours["etcdctl"], theirs, "{phase}/{file}: snapshot status");
    assert_eq!(ours["trailer"]["state"], trailer, "{phase}/{file}");
    assert_eq!(ours["check_problems"], 0);
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let avail = etcd_version();
    let version = avail.clone().unwrap_or_default();
    let mut trials = Vec::new();
    for phase in PHASES {
        let v = version.clone();
        trials.push(Trial::test(
            format!("live_etcd::hashkv::{phase}::snapshot_db"),
            move || compare_hashkv(phase, "snapshot.db", &v),
        ));
        trials.push(Trial::test(
            format!("live_etcd::snapshot_status::{phase}::snapshot_db"),
            move || compare_status(phase, "snapshot.db", "status.json", "valid"),
        ));
    }
    let v = version.clone();
    trials.push(Trial::test(
        "live_etcd::hashkv::final::member_db",
        move || compare_hashkv("final", "db", &v),
    ));
    trials.push(Trial::test(
        "live_etcd::snapshot_status::final::member_db",
        || compare_status("final", "db", "db-status.json", "absent"),
    ));
    let trials = trials
        .into_iter()
        .map(|t| t.with_ignored_flag(avail.is_err()))
        .collect();
    gate_peer("etcd peer", &avail);
    libtest_mimic::run(&args, trials).exit();
}
