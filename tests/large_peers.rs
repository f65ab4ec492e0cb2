//! A generated etcd db (`boltpeer gen-etcd 8`: the generator benches/compare.sh uses, at
//! 8 MiB) against the real peers:
//! - `live_go::gen_etcd_check_compact`: `boltpack check` is clean and Go's `tx.Check()`
//!   says ok on the source; `boltpack compact --revision <mid>` (midpoint between the
//!   compacted and the current revision) writes a verified copy that both checks pass too,
//!   and whose logical content equals Go's dump of it;
//! - `live_etcd::gen_etcd_served`: the source and that copy, each restored into a real
//!   etcd 3.4 (`etcdctl snapshot restore` + start, tests/peer/etcd-lib.sh), serve the same
//!   `get "" --prefix` at the current revision (keys, values, create/mod revisions,
//!   versions, leases) and report the same current revision; the copy refuses
//!   `get --rev <mid - 1>` as compacted.
//!
//! Without Go (or etcd) these trials are listed as ignored with the reason on stderr;
//! with BOLTPACK_REQUIRE_PEERS=1 that is a failure instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{boltpack as bp, path_str as s, *};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const SIZE_MIB: &str = "8";

fn ok(o: &Output, what: &str) -> Result<String, Failed> {
    if !o.status.success() {
        return Err(format!(
            "{what}: {}: {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Generate the source db into `dir`; (path, compacted revision, current revision).
fn generate(dir: &Path) -> Result<(PathBuf, i64, i64), Failed> {
    let src = dir.join("src.db");
    run_peer(&["gen-etcd".as_ref(), SIZE_MIB.as_ref(), src.as_os_str()])?;
    let h: Value = serde_json::from_str(&ok(&bp(&["hashkv", s(&src), "--json"]), "hashkv")?)
        .map_err(|e| e.to_string())?;
    let cur = h["revision"].as_i64().ok_or("no revision")?;
    let comp = h["compact_revision"]
        .as_i64()
        .ok_or("no compact revision")?;
    assert!(
        comp > 1 && comp < cur,
        "gen-etcd compacted at {comp}, current {cur}"
    );
    Ok((src, comp, cur))
}

fn compact_mid(dir: &Path, src: &Path, mid: i64) -> Result<PathBuf, Failed> {
    let out = dir.join("mid.db");
    let rep: Value = serde_json::from_str(&ok(
        &bp(&[
            "compact",
            s(src),
            "-o",
            s(&out),
            "--revision",
            &mid.to_string(),
            "--json",
        ]),
        "compact --revision",
    )?)
    .map_err(|e| e.to_string())?;
    assert_eq!(rep["summary"]["verified"], true);
    Ok(out)
}

fn check_both(db: &Path, what: &str) -> Result<(), Failed> {
    let o = bp(&["check", s(db)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: boltpack check: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        run_peer(&["check".as_ref(), db.as_os_str()])?.trim(),
        "ok",
        "{what}: Go tx.Check()"
    );
    Ok(())
}

fn check_compact() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let (src, comp, cur) = generate(dir.path())?;
    check_both(&src, "source")?;
    let before = sha256_file(&src);
    let out = compact_mid(dir.path(), &src, (comp + cur) / 2)?;
    check_both(&out, "compacted copy")?;
    assert_eq!(sha256_file(&src), before, "source untouched");
    let theirs: Vec<String> = run_peer(&["dump".as_ref(), out.as_os_str()])?
        .lines()
        .map(String::from)
        .collect();
    assert_lines_eq(
        &logical_dump(&open(&out)),
        &theirs,
        "copy vs Go's dump of it",
    );
    Ok(())
}

/// `get "" --prefix -w json` of DB restored into a fresh etcd, and `get --rev REV` (if
/// given) on the same etcd: (get json, status of the --rev get, its stderr).
fn serve(db: &Path, work: &Path, rev: Option<i64>) -> Result<(Value, bool, String), Failed> {
    let rev = rev.map(|r| r.to_string()).unwrap_or_default();
    let o = Command::new("timeout")
        .args(["--kill-after=20", "120", "bash", "-c"])
        .arg(
            r#"set -euo pipefail
source "$1/tests/peer/etcd-lib.sh"
etcd_restore_and_start "$2" "$3/w" >/dev/null
etcdctl_local get "" --prefix -w json >"$3/get.json"
if [ -n "$4" ]; then
    if etcdctl_local get "" --prefix --rev "$4" >/dev/null 2>"$3/rev.err"; then
        echo served >"$3/rev.status"
    else
        echo refused >"$3/rev.status"
    fi
fi
etcd_stop"#,
        )
        .args(["_", s(&repo()), s(db), s(work), &rev])
        .output()?;
    ok(&o, &format!("etcd serving {}", db.display()))?;
    let get: Value = serde_json::from_slice(&std::fs::read(work.join("get.json"))?)
        .map_err(|e| e.to_string())?;
    let (served, err) = if rev.is_empty() {
        (true, String::new())
    } else {
        (
            std::fs::read_to_string(work.join("rev.status"))?.trim() == "served",
            std::fs::read_to_string(work.join("rev.err"))?,
        )
    };
    Ok((get, served, err))
}

fn served() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let (src, comp, cur) = generate(dir.path())?;
    let mid = (comp + cur) / 2;
    let out = compact_mid(dir.path(), &src, mid)?;
    let (w1, w2) = (dir.path().join("e-src"), dir.path().join("e-out"));
    std::fs::create_dir_all(&w1)?;
    std::fs::create_dir_all(&w2)?;
    let (theirs, _, _) = serve(&src, &w1, None)?;
    let (ours, served, err) = serve(&out, &w2, Some(mid - 1))?;
    for (v, what) in [(&theirs, "source"), (&ours, "copy")] {
        assert_eq!(
            v["header"]["revision"].as_i64(),
            Some(cur),
            "{what}'s etcd is at the current revision"
        );
    }
    let (a, b) = (
        ours["kvs"].as_array().ok_or("copy: no kvs")?,
        theirs["kvs"].as_array().ok_or("source: no kvs")?,
    );
    assert!(b.len() > 50, "the source serves {} keys only", b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x, y, "first difference between copy and source");
    }
    assert_eq!(a.len(), b.len(), "number of kvs served");
    assert_eq!(ours["count"], theirs["count"]);
    assert!(!served, "get --rev {} on the copy must be refused", mid - 1);
    assert!(
        err.contains("required revision has been compacted"),
        "get --rev {}: {err}",
        mid - 1
    );
    Ok(())
}

fn etcd_version() -> Result<String, String> {
    let o = Command::new("etcd")
        .arg("--version")
        .output()
        .map_err(|e| format!("etcd not runnable ({e}): apt-get install etcd-server"))?;
    Command::new("etcdctl")
        .arg("version")
        .output()
        .map_err(|e| format!("etcdctl not runnable ({e}): apt-get install etcd-client"))?;
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn main() {
    let args = Arguments::from_args();
    let go = boltpeer_unless_listing(&args);
    let etcd = etcd_version();
    let trials = vec![
        Trial::test("live_go::gen_etcd_check_compact", check_compact)
            .with_ignored_flag(go.is_err()),
        Trial::test("live_etcd::gen_etcd_served", served)
            .with_ignored_flag(go.is_err() || etcd.is_err()),
    ];
    if !args.list {
        for (why, peer) in [
            (go.as_ref().err(), "the Go bbolt peer"),
            (etcd.as_ref().err(), "etcd"),
        ] {
            if let Some(why) = why {
                if require_peers() {
                    eprintln!("BOLTPACK_REQUIRE_PEERS=1 but {peer} is unavailable: {why}");
                    std::process::exit(1);
                }
                eprintln!("NOTE: {peer} unavailable, its live tests are IGNORED: {why}");
            }
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
