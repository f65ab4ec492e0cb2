//! `boltpack compact` on every real fixture: the copy is clean, holds exactly the source's
//! content (compared with Go bbolt's own dump of the source), `--dry-run` predicts its size
//! exactly, and the source is untouched. `live_go::` trials also run Go's `tx.Check()` on
//! every copy and compare the page count with Go bbolt's own `Compact`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

/// Output variants: extra CLI flags, and whether Go's Compact is comparable (4096 pages).
const VARIANTS: &[(&str, &[&str])] = &[
    ("default", &[]),
    ("freelist-none", &["--freelist", "none"]),
    ("freelist-sync", &["--freelist", "sync"]),
    ("ps4096", &["--page-size", "4096", "--freelist", "sync"]),
    ("ps16384", &["--page-size", "16384"]),
    ("fill90", &["--fill-percent", "0.9"]),
];

fn compact(src: &Path, dst: &Path, extra: &[&str]) -> Result<Value, Failed> {
    let mut args = vec![
        "compact".as_ref(),
        src.as_os_str(),
        "-o".as_ref(),
        dst.as_os_str(),
        "--json".as_ref(),
    ];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    let out = Command::new(env!("CARGO_BIN_EXE_boltpack"))
        .args(&args)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "compact {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?)
}

fn dry_run_size(src: &Path, extra: &[&str]) -> Result<u64, Failed> {
    let mut args = vec!["compact", src.to_str().unwrap(), "--dry-run", "--json"];
    args.extend(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_boltpack"))
        .args(&args)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(v["summary"]["dst_size_bytes"].as_u64().unwrap())
}

/// Go's dump of the source: committed next to the fixture, or live for other files.
fn go_dump_of(src: &Path) -> Result<Vec<String>, Failed> {
    let committed = src.with_extension("dump.jsonl");
    if committed.exists() {
        return Ok(std::fs::read_to_string(committed)?
            .lines()
            .map(String::from)
            .collect());
    }
    Ok(run_peer(&["dump".as_ref(), src.as_os_str()])?
        .lines()
        .map(String::from)
        .collect())
}

fn trial(name: String, src: PathBuf, live: bool) -> Trial {
    let kind = if live { "live_go" } else { "committed" };
    Trial::test(format!("{kind}::{name}"), move || {
        let before = sha256_file(&src);
        let expected = go_dump_of(&src)?;
        let dir = tempfile::tempdir()?;
        for (variant, extra) in VARIANTS {
            let dst = dir.path().join(format!("{variant}.db"));
            let report = compact(&src, &dst, extra)?;
            assert_eq!(report["summary"]["verified"], true);
            let size = std::fs::metadata(&dst)?.len();
            assert_eq!(
                size,
                report["summary"]["dst_size_bytes"].as_u64().unwrap(),
                "{variant}: file is pgid * page size"
            );
            assert_eq!(
                size,
                dry_run_size(&src, extra)?,
                "{variant}: --dry-run size is exact"
            );
            let db = open(&dst);
            let problems = boltpack::check::check(&db);
            assert!(problems.is_empty(), "{variant}: {problems:?}");
            assert_lines_eq(
                &logical_dump(&db),
                &expected,
                &format!("{variant}: content vs Go's dump of the source"),
            );
            if live {
                assert_eq!(
                    run_peer(&["check".as_ref(), dst.as_os_str()])?.trim(),
                    "ok",
                    "{variant}: Go tx.Check()"
                );
                let theirs: Vec<String> = run_peer(&["dump".as_ref(), dst.as_os_str()])?
                    .lines()
                    .map(String::from)
                    .collect();
                assert_lines_eq(
                    &theirs,
                    &expected,
                    &format!("{variant}: Go's dump of our copy"),
                );
            }
        }
        if live {
            // Go bbolt's own Compact (what `bbolt compact` runs; 4096-byte pages, freelist).
            let go_dst = dir.path().join("go-compact.db");
            run_peer(&["compact".as_ref(), src.as_os_str(), go_dst.as_os_str()])?;
            let go_pages: Value =
                serde_json::from_str(&run_peer(&["meta".as_ref(), go_dst.as_os_str()])?)
                    .map_err(|e| e.to_string())?;
            let ours = open(&dir.path().join("ps4096.db")).hwm();
            let go = go_pages["hwm"].as_u64().unwrap();
            eprintln!("{name}: pages ours {ours} vs Go Compact {go}");
            assert!(ours <= go, "our copy has {ours} pages, Go's Compact {go}");
        }
        assert_eq!(before, sha256_file(&src), "source modified");
        Ok(())
    })
}

fn refusals() -> Trial {
    Trial::test("committed::refusals_and_atomicity", || {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("src.db");
        std::fs::copy(repo().join("testdata/bbolt/flat.db"), &src)?;
        let bp = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_boltpack"))
                .args(args)
                .output()
                .unwrap()
        };
        let s = src.to_str().unwrap();
        // DST == SRC, also through another spelling of the path.
        let other = format!("{}/./src.db", dir.path().display());
        for dst in [s, other.as_str()] {
            let o = bp(&["compact", s, "-o", dst, "--force"]);
            assert_eq!(
                o.status.code(),
                Some(2),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(String::from_utf8_lossy(&o.stderr).contains("is the source itself"));
        }
        // An existing DST needs --force.
        let dst = dir.path().join("out.db");
        std::fs::write(&dst, b"keep me")?;
        let o = bp(&["compact", s, "-o", dst.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
        assert_eq!(std::fs::read(&dst)?, b"keep me");
        assert_eq!(
            bp(&["compact", s, "-o", dst.to_str().unwrap(), "--force"])
                .status
                .code(),
            Some(0)
        );
        // A missing folder: I/O error, nothing written.
        let o = bp(&[
            "compact",
            s,
            "-o",
            dir.path().join("no/such/dir/x.db").to_str().unwrap(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        // A stale temp file of a dead run is cleaned up; no temp file is left behind.
        let stale = dir.path().join(".out.db.boltpack-tmp-999999999");
        std::fs::write(&stale, b"x")?;
        assert_eq!(
            bp(&["compact", s, "-o", dst.to_str().unwrap(), "--force"])
                .status
                .code(),
            Some(0)
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 2, "only src.db and out.db remain: {left:?}");
        // A locked source is refused.
        let f = std::fs::File::open(&src)?;
        f.lock()?;
        let o = bp(&[
            "compact",
            s,
            "-o",
            dir.path().join("y.db").to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(4));
        // Bad options.
        assert_eq!(
            bp(&[
                "compact",
                s,
                "--dry-run",
                "--no-lock",
                "--fill-percent",
                "2"
            ])
            .status
            .code(),
            Some(2)
        );
        assert_eq!(
            bp(&[
                "compact",
                s,
                "--dry-run",
                "--no-lock",
                "--page-size",
                "3000"
            ])
            .status
            .code(),
            Some(2)
        );
        // MVCC options on a non-etcd file.
        let o = bp(&["compact", s, "--dry-run", "--no-lock", "--revision", "5"]);
        assert_ne!(o.status.code(), Some(0));
        Ok(())
    })
}

/// `compact --data-dir` on a real member (etcd 3.4, or 3.5 upgrading the 3.4 data dir).
/// While it runs, every way of replacing its db is refused with exit 4 and no cluster
/// warning: `--data-dir`, `--data-dir --no-lock`, `-o member/snap/db --force`. Once it is
/// stopped, the db is compacted in place (mode 0600 kept), the backup lands beside the data
/// dir, and the same member restarts with its WAL, logs nothing about a stranger file,
/// serves the same data (compacted below R) and accepts writes.
fn data_dir_trial(peer: EtcdPeer) -> Trial {
    Trial::test(
        format!("live_etcd::data_dir_in_place::{}", peer.label()),
        move || {
            let dir = tempfile::tempdir()?;
            let d = dir.path().display().to_string();
            let script = format!(
                r#"set -euo pipefail; source '{lib}'
            D='{d}/data'; mkdir -p "$D"
            tar -xzf '{tar}' -C "$D"
            etcd_start "$D" '{d}/etcd1.log' >/dev/null
            etcdctl_local get "" --prefix -w json > '{d}/before.json'
            set +e
            '{bp}' compact --data-dir "$D" >/dev/null 2>&1; echo $? > '{d}/locked.txt'
            '{bp}' compact --data-dir "$D" --no-lock >/dev/null 2>&1; echo $? >> '{d}/locked.txt'
            '{bp}' compact '{db}' -o "$D/member/snap/db" --force --no-lock >/dev/null 2>&1; echo $? >> '{d}/locked.txt'
            '{bp}' compact --data-dir "$D" --no-lock --revision 200 >/dev/null 2>'{d}/refused.err'; echo $? >> '{d}/locked.txt'
            set -e
            etcd_stop
            '{bp}' compact --data-dir "$D" --revision 200 --json > '{d}/report.json'
            stat -c %a "$D/member/snap/db" > '{d}/mode.txt'
            ls "$D" "$D/member/snap" > '{d}/listing.txt'
            etcd_start "$D" '{d}/etcd2.log' >/dev/null
            etcdctl_local get "" --prefix -w json > '{d}/after.json'
            (etcdctl_local get "" --prefix --rev 199 2>&1 || true) > '{d}/below.txt'
            etcdctl_local put boltpack-new-key v -w json > '{d}/put.json'
            etcd_stop"#,
                lib = repo().join("tests/peer/etcd-lib.sh").display(),
                tar = repo().join("testdata/etcd/datadir.tar.gz").display(),
                db = repo().join("testdata/etcd/db").display(),
                bp = env!("CARGO_BIN_EXE_boltpack"),
            );
            let out = Command::new("timeout")
                .args(["180", "bash", "-c", &script])
                .envs(peer.env())
                .output()?;
            if !out.status.success() {
                return Err(format!("{}", String::from_utf8_lossy(&out.stderr)).into());
            }
            let text = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
            let read = |f: &str| -> Value { serde_json::from_str(&text(f)).unwrap() };
            let (before, after) = (read("before.json"), read("after.json"));
            assert_eq!(
                before["kvs"], after["kvs"],
                "the member serves the same data after compaction"
            );
            assert_eq!(after["header"]["revision"], 218);
            let report = read("report.json");
            assert_eq!(report["mvcc"]["revision"], 200);
            assert!(text("below.txt").contains("required revision has been compacted"));
            assert_eq!(
                read("put.json")["header"]["revision"],
                219,
                "a new write gets current + 1"
            );
            assert_eq!(
                text("locked.txt").split_whitespace().collect::<Vec<_>>(),
                ["4", "4", "4", "4"],
                "a running member is refused, whatever the flags"
            );
            assert!(
                !text("refused.err").contains("warning"),
                "no cluster warning for a refused run: {}",
                text("refused.err")
            );
            assert_eq!(
                text("mode.txt").trim(),
                "600",
                "the new db keeps etcd's 0600"
            );
            let listing = text("listing.txt");
            assert!(
                !listing.contains("boltpack"),
                "nothing of ours in the data dir: {listing}"
            );
            let backup = report["backup"]["path"].as_str().ok_or("no backup")?;
            assert!(
                Path::new(backup).parent() == Some(dir.path()),
                "the backup is beside the data dir: {backup}"
            );
            assert!(Path::new(backup).exists());
            let log = text("etcd2.log");
            for bad in [
                "boltpack-backup",
                "boltpack-tmp",
                "unexpected non-snap file",
                "unexpected non snapshot file",
                "invalid file",
            ] {
                assert!(!log.contains(bad), "the restarted etcd logs {bad:?}");
            }
            Ok(())
        },
    )
}

fn main() {
    let args = Arguments::from_args();
    let go = boltpeer_unless_listing(&args);
    let mut files: Vec<(String, PathBuf)> = bbolt_fixtures();
    files.push(("etcd-db".into(), repo().join("testdata/etcd/db")));
    files.push((
        "etcd-snapshot".into(),
        repo().join("testdata/etcd/snapshot.db"),
    ));
    let avail = |p: EtcdPeer| {
        if args.list {
            Ok(String::new())
        } else {
            p.available()
        }
    };
    let (etcd, etcd35) = (avail(EtcdPeer::V34), avail(EtcdPeer::V35));
    gate_peer("etcd peer", &etcd);
    gate_peer("etcd 3.5 peer", &etcd35);
    let mut trials = vec![
        refusals(),
        data_dir_trial(EtcdPeer::V34).with_ignored_flag(etcd.is_err()),
        data_dir_trial(EtcdPeer::V35).with_ignored_flag(etcd35.is_err()),
    ];
    for (name, src) in &files {
        // The etcd files have no committed Go dump: their committed trial needs the peer too.
        let committed_needs_go = !src.with_extension("dump.jsonl").exists();
        trials.push(
            trial(name.clone(), src.clone(), false)
                .with_ignored_flag(committed_needs_go && go.is_err()),
        );
        trials.push(trial(name.clone(), src.clone(), true).with_ignored_flag(go.is_err()));
    }
    gate_peer("Go bbolt peer", &go);
    libtest_mimic::run(&args, trials).exit();
}
