//! The edges an operator touches (issue 10): the copy is never more readable than its
//! source, a file a running process holds is never replaced whatever the flags, a
//! compacted snapshot keeps a valid `snapshot save` trailer, and `--data-dir`'s backup stays
//! outside the data dir. `live_etcd::` trials do it on real running members (etcd 3.4 and
//! 3.5), `live_go::` ones need Go bbolt to write a second member into a db, `root::` ones
//! need root (chown, tmpfs mounts); each is listed as ignored with the reason otherwise.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

fn bp_in(umask: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_boltpack"))
        .args(args);
    cmd.output().expect("run boltpack")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn set_mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_out(o: &Output) -> Result<Value, Failed> {
    if !o.status.success() {
        return Err(format!("exit {:?}: {}", o.status.code(), stderr(o)).into());
    }
    Ok(serde_json::from_slice(&o.stdout)?)
}

fn etcd_fixture(name: &str) -> PathBuf {
    testdata(&format!("etcd/{name}"))
}

/// A stopped member's data dir, from the committed one: `DIR/data`.
fn data_dir(dir: &Path) -> Result<PathBuf, Failed> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(etcd_fixture("datadir.tar.gz"))
        .arg("-C")
        .arg(&data)
        .status()?;
    assert!(st.success(), "tar");
    Ok(data)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------- 1. modes

/// The copy has the source's bits (umask 022 would give 0644), and a stricter umask only
/// narrows them.
fn copy_has_source_bits() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("db");
    std::fs::copy(etcd_fixture("db"), &src)?;
    for (src_mode, umask, want) in [
        (0o600, "022", 0o600),
        (0o640, "022", 0o640),
        (0o644, "077", 0o600),
        (0o400, "000", 0o400),
    ] {
        set_mode(&src, src_mode);
        let out = dir.path().join(format!("out-{src_mode:o}-{umask}"));
        let o = bp_in(umask, &["compact", path_str(&src), "-o", path_str(&out)]);
        assert_eq!(code(&o), Some(0), "{}", stderr(&o));
        assert_eq!(
            mode(&out),
            want,
            "source {src_mode:o} under umask {umask}: copy is {:o}",
            mode(&out)
        );
    }
    // --force over a wider existing file: the replacement has the source's bits.
    let out = dir.path().join("wide");
    std::fs::write(&out, b"old")?;
    set_mode(&out, 0o666);
    set_mode(&src, 0o600);
    let o = bp_in(
        "022",
        &["compact", path_str(&src), "-o", path_str(&out), "--force"],
    );
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert_eq!(mode(&out), 0o600);
    Ok(())
}

/// `analyze --html` names keys: 0600 by default, also over an existing wider file;
/// `--report-mode` widens it on request.
fn html_report_is_private() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let db = etcd_fixture("db");
    let html = dir.path().join("r.html");
    let run = |extra: &[&str]| {
        let mut a = vec![
            "analyze",
            path_str(&db),
            "--no-lock",
            "--html",
            path_str(&html),
        ];
        a.extend(extra);
        bp_in("022", &a)
    };
    let o = run(&[]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert_eq!(mode(&html), 0o600);
    set_mode(&html, 0o644);
    let o = run(&[]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert_eq!(
        mode(&html),
        0o600,
        "an existing 0644 report is replaced by a 0600 one"
    );
    let o = run(&["--report-mode", "640"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert_eq!(mode(&html), 0o640);
    assert!(std::fs::read_to_string(&html)?.starts_with("<!DOCTYPE html>"));
    let o = run(&["--report-mode", "999"]);
    assert_eq!(code(&o), Some(2), "{}", stderr(&o));
    Ok(())
}

/// `--data-dir`: the new db keeps the original's bits and, as root, its owner and group
/// (etcd often runs as its own user).
fn data_dir_keeps_mode_and_owner() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let data = data_dir(dir.path())?;
    let db = data.join("member/snap/db");
    assert_eq!(
        mode(&db),
        0o600,
        "the fixture's db is 0600, as etcd makes it"
    );
    std::os::unix::fs::chown(&db, Some(4242), Some(4343))?;
    let o = bp_in("022", &["compact", "--data-dir", path_str(&data), "--json"]);
    let report = json_out(&o)?;
    let m = std::fs::metadata(&db)?;
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    assert_eq!((m.uid(), m.gid()), (4242, 4343), "owner and group kept");
    let backup = PathBuf::from(report["backup"]["path"].as_str().ok_or("no backup")?);
    let b = std::fs::metadata(&backup)?;
    assert_eq!((b.uid(), b.permissions().mode() & 0o777), (4242, 0o600));
    Ok(())
}

// ---------------------------------------------------------------- 2. locks

/// `-o DST --force` over a file a process holds exclusively (as bbolt holds its db):
/// refused with exit 4, with or without --no-lock; a reader's shared lock does not stop it.
fn force_over_a_held_dst() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let dst = dir.path().join("member-db");
    std::fs::copy(etcd_fixture("db"), &dst)?;
    let before = sha256_file(&dst);
    let held = std::fs::File::open(&dst)?;
    held.lock()?;
    let src = etcd_fixture("snapshot.db");
    for extra in [&[][..], &["--no-lock"][..]] {
        let mut a = vec!["compact", path_str(&src), "-o", path_str(&dst), "--force"];
        a.extend(extra);
        let o = boltpack(&a);
        assert_eq!(code(&o), Some(4), "{extra:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("locked by another process"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(sha256_file(&dst), before, "DST unchanged");
    assert_eq!(entries(dir.path()), ["member-db"], "no temp file left");
    held.unlock()?;
    held.lock_shared()?;
    let o = boltpack(&["compact", path_str(&src), "-o", path_str(&dst), "--force"]);
    assert_eq!(
        code(&o),
        Some(0),
        "a reader does not stop it: {}",
        stderr(&o)
    );
    Ok(())
}

/// `--data-dir --no-lock` on a member whose db is held exclusively: exit 4, and the MVCC
/// warning is not printed for a refused run.
fn data_dir_db_held() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let data = data_dir(dir.path())?;
    let db = data.join("member/snap/db");
    let before = sha256_file(&db);
    let held = std::fs::File::open(&db)?;
    held.lock()?;
    for extra in [&[][..], &["--no-lock"][..]] {
        let mut a = vec![
            "compact",
            "--data-dir",
            path_str(&data),
            "--revision",
            "200",
        ];
        a.extend(extra);
        let o = boltpack(&a);
        assert_eq!(code(&o), Some(4), "{extra:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    }
    assert_eq!(sha256_file(&db), before);
    assert_eq!(
        entries(dir.path()),
        ["data"],
        "no backup made for a refused run"
    );
    Ok(())
}

fn refused_with_wal_held(data: &Path) -> Result<(), Failed> {
    for extra in [&[][..], &["--no-lock"][..]] {
        let mut a = vec!["compact", "--data-dir", path_str(data)];
        a.extend(extra);
        let o = boltpack(&a);
        assert_eq!(code(&o), Some(4), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(".wal"), "names the WAL: {}", stderr(&o));
    }
    Ok(())
}

/// A process holding a WAL file with an open-file-description write lock, as etcd does
/// (its db not locked at all): `--data-dir`, with or without --no-lock, is refused.
fn data_dir_wal_held() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let data = data_dir(dir.path())?;
    let wal = std::fs::read_dir(data.join("member/wal"))?
        .next()
        .ok_or("no WAL file")??
        .path();
    // struct flock { short l_type, l_whence; off_t l_start, l_len; pid_t l_pid; }
    let py = r#"
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, getattr(fcntl, "F_OFD_SETLK", 37), struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
print("locked", flush=True)
sys.stdin.read()
"#;
    let mut holder = Command::new("python3")
        .args(["-c", py])
        .arg(&wal)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )?;
    assert_eq!(line.trim(), "locked", "the helper took the OFD lock");
    let result = refused_with_wal_held(&data);
    drop(holder.stdin.take());
    holder.wait()?;
    result?;
    let o = boltpack(&["compact", "--data-dir", path_str(&data), "--no-backup"]);
    assert_eq!(code(&o), Some(0), "once released: {}", stderr(&o));
    Ok(())
}

// ---------------------------------------------------------------- 3. trailer

fn trailer_state(db: &Path) -> Result<String, Failed> {
    let o = boltpack(&["snapshot", "status", path_str(db), "--json", "--no-lock"]);
    let v: Value = serde_json::from_slice(&o.stdout)?;
    Ok(v["status"]["trailer"]["state"]
        .as_str()
        .or_else(|| v["trailer"]["state"].as_str())
        .ok_or_else(|| format!("no trailer state in {v}"))?
        .to_string())
}

/// A snapshot's copy (compacted or not) carries a valid trailer of its own; a member db's
/// copy none unless asked; `check` and `snapshot status` accept both; the dry run's size
/// is the copy's.
fn trailer_follows_the_source() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let snap = etcd_fixture("snapshot.db");
    let db = etcd_fixture("db");
    assert_eq!(trailer_state(&snap)?, "valid");
    let cases: [(&str, &Path, &[&str], &str); 5] = [
        ("snap-defrag", &snap, &[], "valid"),
        ("snap-r207", &snap, &["--revision", "207"], "valid"),
        ("snap-no", &snap, &["--snapshot-trailer", "no"], "absent"),
        ("db", &db, &[], "absent"),
        (
            "db-yes",
            &db,
            &["--snapshot-trailer", "yes", "--revision", "207"],
            "valid",
        ),
    ];
    for (name, src, extra, want) in cases {
        let out = dir.path().join(name);
        let mut a = vec!["compact", path_str(src), "-o", path_str(&out), "--json"];
        a.extend(extra);
        let report = json_out(&boltpack(&a))?;
        assert_eq!(trailer_state(&out)?, want, "{name}");
        assert_eq!(report["summary"]["trailer"], want == "valid", "{name}");
        let size = std::fs::metadata(&out)?.len();
        assert_eq!(
            report["summary"]["dst_size_bytes"], size,
            "{name}: reported size"
        );
        let mut d = vec!["compact", path_str(src), "--dry-run", "--json"];
        d.extend(extra);
        let dry = json_out(&boltpack(&d))?;
        assert_eq!(
            dry["summary"]["dst_size_bytes"], size,
            "{name}: dry run's size"
        );
        let c = boltpack(&["check", path_str(&out)]);
        assert_eq!(
            code(&c),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&c.stdout)
        );
        assert_eq!(
            code(&boltpack(&["snapshot", "status", path_str(&out)])),
            Some(0),
            "{name}"
        );
    }
    Ok(())
}

/// A source whose trailer does not match: an error (exit 1) unless the user says yes or
/// no; `--data-dir` takes no trailer.
fn invalid_trailer_is_an_error() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("bad.db");
    let mut bytes = std::fs::read(etcd_fixture("snapshot.db"))?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&bad, bytes)?;
    let out = dir.path().join("out");
    let o = boltpack(&["compact", path_str(&bad), "-o", path_str(&out)]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("SHA-256 trailer does not match"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    for (choice, want) in [("no", "absent"), ("yes", "valid")] {
        let o = boltpack(&[
            "compact",
            path_str(&bad),
            "-o",
            path_str(&out),
            "--force",
            "--snapshot-trailer",
            choice,
        ]);
        assert_eq!(code(&o), Some(0), "{choice}: {}", stderr(&o));
        assert_eq!(trailer_state(&out)?, want, "{choice}");
    }
    let data = data_dir(dir.path())?;
    let o = boltpack(&[
        "compact",
        "--data-dir",
        path_str(&data),
        "--snapshot-trailer",
        "yes",
    ]);
    assert_eq!(code(&o), Some(2), "{}", stderr(&o));
    Ok(())
}

// ---------------------------------------------------------------- backup

/// The backup goes beside the data dir (nothing new inside it), holds the original, and
/// the report says where and how big; `--backup` takes a folder or a file outside the
/// data dir and refuses one inside.
fn backup_outside_the_data_dir() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let data = data_dir(dir.path())?;
    let db = data.join("member/snap/db");
    let original = sha256_file(&db);
    let (top, snap) = (entries(&data), entries(&data.join("member/snap")));
    let report = json_out(&boltpack(&[
        "compact",
        "--data-dir",
        path_str(&data),
        "--json",
    ]))?;
    let backup = PathBuf::from(report["backup"]["path"].as_str().ok_or("no backup")?);
    assert_eq!(
        backup.parent(),
        Some(dir.path()),
        "beside the data dir: {backup:?}"
    );
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("data.boltpack-backup-") && name.ends_with(".db"),
        "{name}"
    );
    assert_eq!(sha256_file(&backup), original, "the backup is the original");
    assert_eq!(
        report["backup"]["bytes"],
        std::fs::metadata(&backup)?.len(),
        "its size"
    );
    assert_eq!(report["backup"]["kind"], "hard_link");
    assert_eq!(entries(&data), top, "nothing new in the data dir");
    assert_eq!(
        entries(&data.join("member/snap")),
        snap,
        "nothing new in member/snap"
    );
    let text = boltpack(&["compact", "--data-dir", path_str(&data), "--no-backup"]);
    assert_eq!(code(&text), Some(0), "{}", stderr(&text));

    let elsewhere = dir.path().join("backups");
    std::fs::create_dir(&elsewhere)?;
    let o = boltpack(&[
        "compact",
        "--data-dir",
        path_str(&data),
        "--backup",
        path_str(&elsewhere),
    ]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("backups/data.boltpack-backup-"), "{out}");
    assert!(out.contains("MiB of disk until you delete it"), "{out}");
    assert_eq!(entries(&elsewhere).len(), 1);
    let file = dir.path().join("my-backup.db");
    let o = boltpack(&[
        "compact",
        "--data-dir",
        path_str(&data),
        "--backup",
        path_str(&file),
    ]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(file.exists());
    for inside in [data.join("member/snap/old.db"), data.join("old.db")] {
        let o = boltpack(&[
            "compact",
            "--data-dir",
            path_str(&data),
            "--backup",
            path_str(&inside),
        ]);
        assert_eq!(code(&o), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("inside the data dir"), "{}", stderr(&o));
        assert!(!inside.exists());
    }
    Ok(())
}

/// A data dir that is its own file system (a mounted volume, as in Kubernetes): the
/// backup beside it cannot be a hard link, so it is a copy with the original's bits.
fn backup_across_file_systems() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data)?;
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=128m", "tmpfs"])
        .arg(&data)
        .status()?;
    if !st.success() {
        return Err("mount -t tmpfs failed".into());
    }
    let result = backup_copied(dir.path(), &data);
    let _ = Command::new("umount").arg(&data).status();
    result
}

fn backup_copied(dir: &Path, data: &Path) -> Result<(), Failed> {
    data_dir(dir)?;
    let db = data.join("member/snap/db");
    let original = sha256_file(&db);
    let report = json_out(&boltpack(&[
        "compact",
        "--data-dir",
        path_str(data),
        "--json",
    ]))?;
    assert_eq!(report["backup"]["kind"], "copy");
    let backup = PathBuf::from(report["backup"]["path"].as_str().unwrap());
    assert_eq!(sha256_file(&backup), original);
    assert_eq!(mode(&backup), 0o600);
    Ok(())
}

// ---------------------------------------------------------------- the cluster warning

/// The HashKV warning shows only for a db whose members bucket lists more than one member
/// (a second member written by real bbolt).
fn cluster_warning_needs_two_members() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let data = data_dir(dir.path())?;
    let o = boltpack(&[
        "compact",
        "--data-dir",
        path_str(&data),
        "--revision",
        "200",
        "--no-backup",
    ]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("warning"),
        "one member: {}",
        stderr(&o)
    );
    let db = data.join("member/snap/db");
    let member = r#"{"id":8799305062043824496,"peerURLs":["http://127.0.0.1:2"],"name":"other"}"#;
    run_peer(&[
        "put".as_ref(),
        db.as_os_str(),
        "members".as_ref(),
        "7a1e2b3c4d5e6f70".as_ref(),
        member.as_ref(),
    ])?;
    let o = boltpack(&[
        "compact",
        "--data-dir",
        path_str(&data),
        "--revision",
        "210",
        "--no-backup",
    ]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("lists 2 members"), "{}", stderr(&o));
    // Defragmenting alone changes no HashKV: no warning.
    let o = boltpack(&["compact", "--data-dir", path_str(&data), "--no-backup"]);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let go = boltpeer_unless_listing(&args);
    let root = is_root();
    let mut trials = vec![
        Trial::test("modes::copy_has_source_bits", copy_has_source_bits),
        Trial::test("modes::html_report_is_private", html_report_is_private),
        Trial::test(
            "root::modes::data_dir_keeps_mode_and_owner",
            data_dir_keeps_mode_and_owner,
        )
        .with_ignored_flag(!root),
        Trial::test("locks::force_over_a_held_dst", force_over_a_held_dst),
        Trial::test("locks::data_dir_db_held", data_dir_db_held),
        Trial::test("locks::data_dir_wal_held", data_dir_wal_held),
        Trial::test("trailer::follows_the_source", trailer_follows_the_source),
        Trial::test("trailer::invalid_is_an_error", invalid_trailer_is_an_error),
        Trial::test("backup::outside_the_data_dir", backup_outside_the_data_dir),
        Trial::test(
            "root::backup::across_file_systems",
            backup_across_file_systems,
        )
        .with_ignored_flag(!root),
        Trial::test(
            "live_go::cluster_warning_needs_two_members",
            cluster_warning_needs_two_members,
        )
        .with_ignored_flag(go.is_err()),
    ];
    if !root {
        eprintln!("NOTE: not root, the root:: trials (chown, tmpfs mount) are IGNORED");
    }
    trials.shrink_to_fit();
    gate_peer("Go bbolt peer", &go);
    libtest_mimic::run(&args, trials).exit();
}
