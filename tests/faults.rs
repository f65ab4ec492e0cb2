//! `boltpack compact` under faults while writing: a full disk, permission denied (three
//! ways), a DST that cannot be written, a locked source, and a `kill -9` in the middle of the
//! write. Every case must give a clear error and the exit code of the README, leave no DST
//! and no temp file behind (except the killed run's, which the next run removes), and leave
//! SRC byte-identical.
//!
//! The refusals of tests/compact.rs (`refusals_and_atomicity`: DST = SRC, an existing DST
//! without --force, a missing folder, an in-process exclusive lock, bad options) are not
//! repeated here.
//!
//! How the faults are made (tests run as root, so `chmod` denies nothing):
//! - full disk: a 200 KiB tmpfs mounted by the test (`mount -t tmpfs -o size=200k`);
//! - permission denied: a tmpfs mounted read-only (EROFS), a folder made immutable with
//!   `chattr +i` (EPERM), and boltpack run as `nobody` through `setpriv` against a root-owned
//!   folder and a mode-0600 source (EACCES, the real "Permission denied");
//! - locks: `flock -x SRC cat` from util-linux holds an exclusive lock in another process,
//!   and a real etcd 3.4 (tests/peer/etcd-lib.sh) serving the member whose db is SRC.
//!
//! A trial whose mechanism is unavailable here (not root, no `mount`, no `chattr`, no
//! `setpriv`, no `flock`) is listed as ignored, with the reason printed. The etcd trial follows
//! the peer rules of the other live tests (BOLTPACK_REQUIRE_PEERS=1 makes a missing etcd fail).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use boltpack::Db;
use boltpack::writer::{CompactOptions, Transform, compact_to};
use common::{boltpack as bp, path_str as s, *};
use libtest_mimic::{Arguments, Failed, Trial};

const BP: &str = env!("CARGO_BIN_EXE_boltpack");

/// The run failed with `code`, and its message says `needle`.
fn assert_fails(o: &Output, code: i32, needle: &str) -> Result<(), Failed> {
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.code() != Some(code) || !err.contains(needle) {
        return Err(format!(
            "expected exit {code} with {needle:?}, got {:?}: {err}",
            o.status.code()
        )
        .into());
    }
    if !err.starts_with("boltpack: ") || err.trim().lines().count() != 1 {
        return Err(format!("not one clear line: {err:?}").into());
    }
    Ok(())
}

/// Files in `dir` (names).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// No DST and no temp file in DST's folder.
fn assert_nothing_written(dst: &Path) -> Result<(), Failed> {
    if dst.symlink_metadata().is_ok() {
        return Err(format!("{} exists after a failed run", dst.display()).into());
    }
    if let Some(dir) = dst.parent() {
        let tmp: Vec<String> = names(dir)
            .into_iter()
            .filter(|n| n.contains(".boltpack-tmp-"))
            .collect();
        if !tmp.is_empty() {
            return Err(format!("temp files left in {}: {tmp:?}", dir.display()).into());
        }
    }
    Ok(())
}

/// A private copy of a fixture, and its hash.
fn source(dir: &Path, fixture: &str) -> (PathBuf, String) {
    let src = dir.join("src.db");
    std::fs::copy(repo().join("testdata/bbolt").join(fixture), &src).unwrap();
    let h = sha256_file(&src);
    (src, h)
}

fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(())
}

/// A tmpfs mounted for one trial, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, opts: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        run_ok(Command::new("mount").args(["-t", "tmpfs", "-o", opts, "tmpfs", s(at)]))?;
        Ok(Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Whether a mechanism works here; the reason when not.
fn probe_mount() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    Mount::tmpfs(&dir.path().join("m"), "size=64k").map(drop)
}

fn probe_chattr() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    run_ok(Command::new("chattr").arg("+i").arg(dir.path()))
        .map_err(|e| format!("chattr +i unavailable: {e}"))?;
    let denied = std::fs::write(dir.path().join("x"), b"x").is_err();
    let _ = Command::new("chattr").arg("-i").arg(dir.path()).status();
    if denied {
        Ok(())
    } else {
        Err("chattr +i does not deny writes here".into())
    }
}

fn probe_setpriv() -> Result<(), String> {
    run_ok(Command::new("setpriv").args(NOBODY).arg("true"))
        .map_err(|e| format!("setpriv to nobody unavailable: {e}"))
}

fn probe_flock() -> Result<(), String> {
    run_ok(Command::new("flock").args(["-n", "/", "true"]))
        .map_err(|e| format!("flock (util-linux) unavailable: {e}"))
}

const NOBODY: &[&str] = &["--reuid=65534", "--regid=65534", "--clear-groups"];

// ---------------------------------------------------------------------------------------

/// A copy larger than the file system: ENOSPC while streaming the pages.
fn full_disk() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let (src, before) = source(dir.path(), "bigvalues.db"); // a ~4 MiB copy
    let mnt = dir.path().join("small");
    let _m = Mount::tmpfs(&mnt, "size=200k")?;
    let dst = mnt.join("out.db");
    let o = bp(&["compact", s(&src), "-o", s(&dst)]);
    assert_fails(&o, 3, "No space left on device")?;
    assert_fails(&o, 3, ".out.db.boltpack-tmp-")?; // the message names the file written
    assert_nothing_written(&dst)?;
    assert_eq!(
        names(&mnt),
        Vec::<String>::new(),
        "the tmpfs is empty again"
    );
    assert_eq!(sha256_file(&src), before, "source modified");
    // The same file system takes a copy that fits: the failure was the space.
    let small = repo().join("testdata/bbolt/empty.db");
    let o = bp(&["compact", s(&small), "-o", s(&dst)]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(names(&mnt), vec!["out.db".to_string()]);
    Ok(())
}

/// DST on a read-only file system: EROFS when creating the temp file.
fn read_only_mount() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let (src, before) = source(dir.path(), "flat.db");
    let mnt = dir.path().join("ro");
    let _m = Mount::tmpfs(&mnt, "ro,size=1m")?;
    let dst = mnt.join("out.db");
    let o = bp(&["compact", s(&src), "-o", s(&dst)]);
    assert_fails(&o, 3, "Read-only file system")?;
    assert_nothing_written(&dst)?;
    assert_eq!(sha256_file(&src), before, "source modified");
    Ok(())
}

/// DST's folder immutable (`chattr +i`): EPERM even for root.
fn immutable_folder() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let (src, before) = source(dir.path(), "flat.db");
    let out = dir.path().join("out");
    std::fs::create_dir(&out)?;
    let dst = out.join("out.db");
    run_ok(Command::new("chattr").arg("+i").arg(&out))?;
    let o = bp(&["compact", s(&src), "-o", s(&dst)]);
    let _ = Command::new("chattr").arg("-i").arg(&out).status();
    assert_fails(&o, 3, "Operation not permitted")?;
    assert_nothing_written(&dst)?;
    assert_eq!(sha256_file(&src), before, "source modified");
    Ok(())
}

/// boltpack as `nobody`: a root-owned folder it may not write, then a source it may not
/// read. Both are EACCES, "Permission denied".
fn unprivileged() -> Result<(), Failed> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let (src, before) = source(dir.path(), "flat.db");
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644))?;
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(NOBODY)
            .arg(BP)
            .args(args)
            .output()
            .unwrap()
    };
    let dst = dir.path().join("out.db");
    let o = as_nobody(&["compact", s(&src), "-o", s(&dst)]);
    assert_fails(&o, 3, "Permission denied")?;
    assert_nothing_written(&dst)?;
    // A world-writable folder, but a source only root may read.
    let out = dir.path().join("pub");
    std::fs::create_dir(&out)?;
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777))?;
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o600))?;
    let dst = out.join("out.db");
    let o = as_nobody(&["compact", s(&src), "-o", s(&dst)]);
    assert_fails(&o, 3, "Permission denied")?;
    assert_nothing_written(&dst)?;
    // Readable again, the same run succeeds: the denial was the permission.
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644))?;
    let o = as_nobody(&["compact", s(&src), "-o", s(&dst)]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(sha256_file(&src), before, "source modified");
    Ok(())
}

/// Destinations that cannot be files: a path through a regular file, a directory, and a
/// symlink to SRC (refused as SRC itself, even with --force).
fn bad_destinations() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let (src, before) = source(dir.path(), "flat.db");
    let file = dir.path().join("file.txt");
    std::fs::write(&file, b"x")?;
    let dst = file.join("out.db");
    let o = bp(&["compact", s(&src), "-o", s(&dst)]);
    assert_fails(&o, 3, "Not a directory")?;

    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub)?;
    let o = bp(&["compact", s(&src), "-o", s(&sub)]);
    assert_fails(&o, 2, "is a directory")?; // said first: --force would not help

    let o = bp(&["compact", s(&src), "-o", s(&sub), "--force"]);
    assert_fails(&o, 2, "is a directory")?;
    assert!(sub.is_dir() && names(&sub).is_empty());

    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&src, &link)?;
    let o = bp(&["compact", s(&src), "-o", s(&link), "--force"]);
    assert_fails(&o, 2, "is the source itself")?;
    assert!(link.symlink_metadata()?.file_type().is_symlink());

    let mut left = names(dir.path());
    left.retain(|n| n.contains(".boltpack-tmp-"));
    assert!(left.is_empty(), "temp files left: {left:?}");
    assert_eq!(sha256_file(&src), before, "source modified");
    Ok(())
}

/// A process holding a lock on a file: `flock MODE FILE cat`, reading a pipe. Closing the
/// pipe ends `cat` and so releases the lock (no orphan keeps it).
struct Holder(Child);

impl Holder {
    /// Start it and wait until it holds the lock.
    fn start(src: &Path, mode: &str) -> Result<Holder, Failed> {
        let h = Holder(
            Command::new("flock")
                .args([mode, s(src), "cat"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()?,
        );
        let t = Instant::now();
        // An exclusive lock shows as a failing non-blocking shared flock; a shared one as a
        // failing non-blocking exclusive flock.
        let probe = if mode == "-x" { "-s" } else { "-x" };
        while Command::new("flock")
            .args(["-n", probe, s(src), "true"])
            .status()?
            .success()
        {
            if t.elapsed() > Duration::from_secs(10) {
                return Err("flock did not take the lock".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(h)
    }

    fn release(mut self) -> Result<(), Failed> {
        drop(self.0.stdin.take());
        self.0.wait()?;
        Ok(())
    }
}

/// Another process (as a running etcd or bbolt) holds an exclusive lock: exit 4. A shared
/// holder (another reader, another boltpack) does not stop compact.
fn locked_by_other_process() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let (src, before) = source(dir.path(), "flat.db");
    let dst = dir.path().join("out.db");
    let holder = Holder::start(&src, "-x")?;
    let o = bp(&["compact", s(&src), "-o", s(&dst)]);
    let d = bp(&["compact", s(&src), "--dry-run"]);
    holder.release()?;
    assert_fails(&o, 4, "locked by another process")?;
    assert_fails(&d, 4, "locked by another process")?;
    assert_nothing_written(&dst)?;

    let holder = Holder::start(&src, "-s")?;
    let o = bp(&["compact", s(&src), "-o", s(&dst)]);
    holder.release()?;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(sha256_file(&src), before, "source modified");
    Ok(())
}

/// A source big enough that compact takes a moment: the etcd fixture with ~200 MiB of
/// extra entries in its `meta` bucket, written by our own writer (deterministic, no peer).
fn big_source(path: &Path) -> Result<(), Failed> {
    use std::collections::BTreeMap;
    use std::io::{BufWriter, Write};
    use std::os::unix::fs::FileExt;
    let db = Db::open(
        repo().join("testdata/etcd/db"),
        boltpack::OpenOptions { lock: false },
    )?;
    let mut fill = BTreeMap::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..50_000u32 {
        let v: Vec<u8> = (0..2048)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fill.insert(format!("boltpack-fill-{i:08}").into_bytes(), v);
    }
    let mut t = Transform::default();
    t.set.insert(b"meta".to_vec(), fill);
    let f = std::fs::File::create(path)?;
    let w = compact_to(
        &db,
        &CompactOptions::default(),
        &t,
        BufWriter::with_capacity(8 << 20, f),
    )?;
    let mut f = w.out.into_inner().map_err(|e| e.to_string())?;
    f.flush()?;
    f.write_all_at(&w.metas, 0)?;
    Ok(())
}

/// `kill -9` while the copy is being written: no DST, the temp file stays (or not); the
/// next run succeeds and removes the stale temp file. Two boltpack runs on the same source
/// at once both succeed (shared locks).
fn kill_during_write() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("big.db");
    big_source(&src)?;
    let size = std::fs::metadata(&src)?.len();
    assert!(size > 100 << 20, "big source is {size} bytes");
    let before = sha256_file(&src);
    let dst = dir.path().join("out.db");

    let mut child = Command::new(BP)
        .args(["compact", s(&src), "-o", s(&dst)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let tmp = dir
        .path()
        .join(format!(".out.db.boltpack-tmp-{}", child.id()));
    let t = Instant::now();
    // Mid-write: the temp file holds some pages (the writer's buffer is 8 MiB).
    while std::fs::metadata(&tmp).map_or(0, |m| m.len()) < 8 << 20 {
        if t.elapsed() > Duration::from_secs(60) || child.try_wait()?.is_some() {
            let _ = child.kill();
            return Err("the temp file never reached 8 MiB before the run ended".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill()?; // SIGKILL
    let status = child.wait()?;
    assert_eq!(status.signal(), Some(9), "killed mid-write: {status:?}");
    assert!(
        dst.symlink_metadata().is_err(),
        "no DST after kill -9 mid-write"
    );
    let tmp_size = std::fs::metadata(&tmp).map_or(0, |m| m.len());
    eprintln!("killed with the temp file at {tmp_size} bytes of a {size}-byte source");
    assert_eq!(sha256_file(&src), before, "source modified");

    // The next run: succeeds, removes the dead run's temp file.
    let o = bp(&["compact", s(&src), "-o", s(&dst)]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(!tmp.exists(), "stale temp file removed");
    assert_eq!(names(dir.path()), vec!["big.db", "out.db"]);
    assert!(boltpack::check::check(&open(&dst)).is_empty());

    // Two runs at once on the same source (both take shared locks).
    let runs: Vec<Child> = ["a.db", "b.db"]
        .iter()
        .map(|n| {
            Command::new(BP)
                .args(["compact", s(&src), "-o", s(&dir.path().join(n))])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for r in runs {
        let o = r.wait_with_output()?;
        assert_eq!(o.status.code(), Some(0), "{o:?}");
    }
    assert_eq!(sha256_file(&src), before, "source modified");
    Ok(())
}

/// A real etcd 3.4 serving a member: compact of its db (with -o, and --dry-run) is refused
/// with exit 4 and writes nothing; once the member is stopped, the same command works.
fn locked_by_running_etcd() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let d = dir.path().display().to_string();
    let script = format!(
        r#"set -euo pipefail; source '{lib}'
        tar -xzf '{tar}' -C '{d}'
        etcd_start '{d}' '{d}/etcd.log' >/dev/null
        set +e
        '{bp}' compact '{d}/member/snap/db' -o '{d}/out.db' 2> '{d}/err.txt'; echo $? > '{d}/code.txt'
        '{bp}' compact '{d}/member/snap/db' --dry-run 2>/dev/null; echo $? > '{d}/dry.txt'
        ls -A '{d}' > '{d}/ls.txt'
        set -e
        etcd_stop
        '{bp}' compact '{d}/member/snap/db' -o '{d}/out.db' >/dev/null"#,
        lib = repo().join("tests/peer/etcd-lib.sh").display(),
        tar = repo().join("testdata/etcd/datadir.tar.gz").display(),
        bp = BP,
    );
    let out = Command::new("timeout")
        .args(["180", "bash", "-c", &script])
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    assert_eq!(read("code.txt").trim(), "4", "{}", read("err.txt"));
    assert_eq!(read("dry.txt").trim(), "4");
    assert!(read("err.txt").contains("locked by another process"));
    let ls = read("ls.txt");
    assert!(
        !ls.contains("out.db") && !ls.contains(".boltpack-tmp-"),
        "nothing written while etcd ran: {ls}"
    );
    assert!(boltpack::check::check(&open(&dir.path().join("out.db"))).is_empty());
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let probe = |f: fn() -> Result<(), String>| if args.list { Ok(()) } else { f() };
    let etcd = probe(|| {
        run_ok(Command::new("etcd").arg("--version"))
            .map_err(|e| format!("etcd unavailable (apt-get install etcd-server etcd-client): {e}"))
    });
    if !args.list {
        gate_peer("etcd peer", &etcd);
    }
    let (mount, chattr, setpriv, flock) = (
        probe(probe_mount),
        probe(probe_chattr),
        probe(probe_setpriv),
        probe(probe_flock),
    );
    let trial = |name: &str, f: fn() -> Result<(), Failed>, need: &[&Result<(), String>]| {
        let why: Vec<&str> = need
            .iter()
            .filter_map(|r| r.as_ref().err().map(String::as_str))
            .collect();
        if !why.is_empty() {
            eprintln!("NOTE: faults::{name} IGNORED: {}", why.join("; "));
        }
        Trial::test(format!("faults::{name}"), f).with_ignored_flag(!why.is_empty())
    };
    let trials = vec![
        trial("full_disk_tmpfs", full_disk, &[&mount]),
        trial("read_only_mount", read_only_mount, &[&mount]),
        trial("immutable_folder", immutable_folder, &[&chattr]),
        trial("permission_denied_as_nobody", unprivileged, &[&setpriv]),
        trial("bad_destinations", bad_destinations, &[]),
        trial(
            "locked_by_other_process",
            locked_by_other_process,
            &[&flock],
        ),
        trial("kill_9_during_write", kill_during_write, &[]),
        trial("locked_by_running_etcd", locked_by_running_etcd, &[&etcd]),
    ];
    libtest_mimic::run(&args, trials).exit();
}
