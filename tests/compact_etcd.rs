//! `boltpack compact --revision R` against a real etcd: the compacted copy must serve exactly
//! what the source serves.
//!
//! Sources: the committed fixture `testdata/etcd/db` (current 218, compacted 166 online),
//! and three files of a fresh history that `peer/etcd-compact-history.sh` writes now on a
//! live etcd: `pre.db` (`snapshot save` before any compaction), `db` (the member db after
//! one online compaction and more writes) and `tiny.db` (a tiny member db whose buckets,
//! `key` included, are all inline).
//!
//! For every R (current, on a tombstone under `keep` and `drop`, on a txn with deletes, on
//! a put, on a leased key's tombstone, just above the compacted revision, the first
//! revision):
//! 1. `boltpack compact SRC -o OUT --revision R` exits 0 with a verified output; its `key`
//!    bucket keeps every revision > R, no tombstone < R, the tombstones at R only under
//!    `keep`, and the report counts what it removed;
//! 2. OUT and SRC are each restored into a real etcd (`peer/etcd-serve.sh`; SRC once per
//!    source) and `get "" --prefix --rev R' -w json` must give the same kvs (key, value,
//!    create/mod revision, version, lease) for every R' in R..=current;
//! 3. on OUT's etcd, `get --rev R-1` fails with "required revision has been compacted";
//! 4. its `endpoint hashkv --rev current` and `endpoint hashkv` (rev 0) equal `boltpack
//!    hashkv OUT` with the same `--rev` (hash and compact revision R; for R = current,
//!    3.4.23 refuses `--rev current` as compacted, and so must we), and `endpoint status`
//!    is at the current revision;
//! 5. a new put there gets revision current+1.
//!
//! Plus: R above current fails cleanly and writes nothing; R at or below the compacted
//! revision only defragments (mvcc.revision null, a note); `--keep-revisions N` equals
//! `--revision current-N`; the report's key and bucket counts include inline buckets.
//! Sizes (SRC bytes -> OUT bytes) go to stderr as `SIZE` lines.
//!
//! Without etcd the live trials are listed as ignored, with the reason on stderr (the
//! fixture-only trials still run); with BOLTPACK_REQUIRE_PEERS=1 that is a failure instead.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use base64::Engine;
use common::{EtcdPeer, boltpack, etcd_version, gate_peer, path_str as s, repo, sha256_file};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

/// Upper bound for one peer script (etcd start, up to ~60 gets, stop).
const SCRIPT_TIMEOUT: &str = "300";

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compact-etcd")
}

/// Run a peer script under `timeout`; its stderr on failure.
fn script(name: &str, args: &[&str]) -> Result<(), String> {
    script_env(name, args, &[])
}

/// [`script`] with extra environment (the etcd 3.5 peer, the restore's hash check).
fn script_env(name: &str, args: &[&str], env: &[(String, String)]) -> Result<(), String> {
    let o = Command::new("timeout")
        .args(["--kill-after=20", SCRIPT_TIMEOUT, "bash"])
        .arg(repo().join("tests/peer").join(name))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "{name} {args:?} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- sources

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    /// testdata/etcd/db
    Fixture,
    /// fresh history, `snapshot save` before any compaction
    Pre,
    /// fresh history, member db after one online compaction
    Final,
    /// a tiny fresh history: every bucket inline, the `key` bucket too
    Tiny,
}

impl Src {
    fn name(self) -> &'static str {
        match self {
            Src::Fixture => "fixture",
            Src::Pre => "fresh_pre",
            Src::Final => "fresh_final",
            Src::Tiny => "fresh_tiny",
        }
    }
}

#[derive(Debug, Clone)]
struct SrcInfo {
    path: PathBuf,
    current: i64,
    /// The compacted revision, if any.
    compacted: Option<i64>,
    /// Named revisions of the history.
    revs: BTreeMap<String, i64>,
}

impl SrcInfo {
    fn rev(&self, name: &str) -> Result<i64, Failed> {
        self.revs
            .get(name)
            .copied()
            .ok_or_else(|| format!("no revision named {name:?} in {:?}", self.revs).into())
    }
}

/// The fresh history, written once for all trials.
fn fresh() -> Result<PathBuf, String> {
    static RUN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    RUN.get_or_init(|| {
        let out = tmp().join("history");
        script("etcd-compact-history.sh", &[s(&out)])?;
        Ok(out)
    })
    .clone()
}

fn src_info(src: Src) -> Result<SrcInfo, Failed> {
    match src {
        Src::Fixture => {
            let facts: Value = serde_json::from_str(&std::fs::read_to_string(
                repo().join("testdata/etcd/expected/facts.json"),
            )?)?;
            let current = facts["current_revision"].as_i64().unwrap();
            let compacted = facts["compacted_revision"].as_i64().unwrap();
            let revs = [
                // `boltpack dump --etcd testdata/etcd/db key`: pod-0's tombstone; the txn
                // at 212 (3 puts, 2 deletes); cm-0's put at 211 ("mid").
                ("tomb", 207),
                ("txn", 212),
                ("put", 211),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            Ok(SrcInfo {
                path: repo().join("testdata/etcd/db"),
                current,
                compacted: Some(compacted),
                revs,
            })
        }
        Src::Pre | Src::Final | Src::Tiny => {
            let dir = fresh()?;
            let mut revs = BTreeMap::new();
            for line in std::fs::read_to_string(dir.join("revisions"))?.lines() {
                let (k, v) = line.split_once(' ').ok_or("bad revisions line")?;
                revs.insert(k.to_string(), v.parse::<i64>()?);
            }
            let (file, prefix, compacted) = match src {
                Src::Pre => ("pre.db", "pre_", None),
                Src::Tiny => ("tiny.db", "tiny_", None),
                _ => ("db", "final_", Some(revs["compacted"])),
            };
            let revs: BTreeMap<String, i64> = revs
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), *v)))
                .collect();
            Ok(SrcInfo {
                path: dir.join(file),
                current: revs["current"],
                compacted,
                revs,
            })
        }
    }
}

/// The lowest R any trial compacts `src` at: the reference answers start there.
fn reference_from(info: &SrcInfo) -> i64 {
    info.compacted.map_or(2, |c| c + 1)
}

/// What SRC itself serves (restored into a real etcd once per source): the directory of
/// `etcd-serve.sh`'s answers for R' = reference_from..=current.
fn reference(src: Src) -> Result<PathBuf, String> {
    static REFS: [OnceLock<Result<PathBuf, String>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    REFS[src as usize]
        .get_or_init(|| {
            let info = src_info(src).map_err(|e| format!("{e:?}"))?;
            let dir = tmp().join(src.name()).join("reference");
            let _ = std::fs::remove_dir_all(&dir);
            let from = reference_from(&info).to_string();
            let to = info.current.to_string();
            script(
                "etcd-serve.sh",
                &[
                    s(&info.path),
                    s(&dir.join("work")),
                    s(&dir.join("served")),
                    &from,
                    &to,
                ],
            )?;
            Ok(dir.join("served"))
        })
        .clone()
}

// ---------------------------------------------------------------- etcd answers

fn read_json(p: &Path) -> Result<Value, Failed> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?)
}

/// One kv as etcdctl's JSON gives it (zero fields are omitted there).
#[derive(Debug, PartialEq, Eq)]
struct Kv {
    key: String,
    value: String,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
}

fn kvs(get: &Value) -> Vec<Kv> {
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    get["kvs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| Kv {
                    key: text(&kv["key"]),
                    value: text(&kv["value"]),
                    create_revision: int(&kv["create_revision"]),
                    mod_revision: int(&kv["mod_revision"]),
                    version: int(&kv["version"]),
                    lease: int(&kv["lease"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|_| s.to_string())
}

/// `get --rev r` of OUT's etcd against SRC's: same kvs, same count.
fn compare_get(ours: &Path, theirs: &Path, r: i64, what: &str) -> Result<usize, Failed> {
    let file = format!("get/{r}.json");
    for dir in [ours, theirs] {
        let err = dir.join(format!("get/{r}.err"));
        if err.exists() {
            return Err(format!(
                "{what}: get --rev {r} failed on {}: {}",
                dir.display(),
                std::fs::read_to_string(err)?
            )
            .into());
        }
    }
    let (a, b) = (
        read_json(&ours.join(&file))?,
        read_json(&theirs.join(&file))?,
    );
    let (ka, kb) = (kvs(&a), kvs(&b));
    for (x, y) in ka.iter().zip(&kb) {
        if x != y {
            return Err(format!(
                "{what}: get --rev {r}: first difference at key {:?}: compacted copy serves \
                 {x:?}, source serves {y:?}",
                b64(&x.key)
            )
            .into());
        }
    }
    if ka.len() != kb.len() {
        let extra = if ka.len() > kb.len() {
            format!("copy has extra {:?}", b64(&ka[kb.len()].key))
        } else {
            format!("copy lacks {:?}", b64(&kb[ka.len()].key))
        };
        return Err(format!(
            "{what}: get --rev {r}: {} kvs served from the copy, {} from the source ({extra})",
            ka.len(),
            kb.len()
        )
        .into());
    }
    assert_eq!(a["count"], b["count"], "{what}: get --rev {r}: count");
    Ok(ka.len())
}

// ---------------------------------------------------------------- trials

#[derive(Debug, Clone, Copy)]
enum At {
    Fixed(i64),
    Named(&'static str),
    Current,
    /// The compacted revision, and + 1.
    Compacted,
    AfterCompacted,
}

impl At {
    fn resolve(self, info: &SrcInfo) -> Result<i64, Failed> {
        match self {
            At::Fixed(r) => Ok(r),
            At::Named(n) => info.rev(n),
            At::Current => Ok(info.current),
            At::Compacted => Ok(info.compacted.ok_or("never compacted")?),
            At::AfterCompacted => Ok(info.compacted.ok_or("never compacted")? + 1),
        }
    }
}

/// The `key` bucket revisions of a file: (main, sub, tombstone).
fn key_revisions(db: &Path) -> Result<Vec<(i64, i64, bool)>, Failed> {
    let o = boltpack(&["dump", s(db), "key", "--etcd", "--hash-values"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "dump: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut v = Vec::new();
    for line in String::from_utf8(o.stdout)?.lines() {
        let e: Value = serde_json::from_str(line)?;
        let r = &e["revision"];
        v.push((
            r["main"].as_i64().ok_or("no revision.main")?,
            r["sub"].as_i64().ok_or("no revision.sub")?,
            r["tombstone"].as_bool().ok_or("no revision.tombstone")?,
        ));
    }
    Ok(v)
}

fn hashkv_json(db: &Path, version: &str) -> Result<Value, Failed> {
    let o = boltpack(&["hashkv", s(db), "--json", "--etcd-version", version]);
    if o.status.code() != Some(0) {
        return Err(format!(
            "boltpack hashkv {}: {}",
            db.display(),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&o.stdout)?)
}

/// `endpoint hashkv --rev current` (file `hashkv`) or `endpoint hashkv` (rev 0, file
/// `hashkv0`) of OUT's etcd against `boltpack hashkv OUT` with the same `--rev`: the same
/// hash and compact revision R, or the same "compacted" refusal (etcd 3.4.23 refuses
/// `--rev current` when R = current, but hashes rev 0). A description of the answer.
fn compare_hashkv(
    served: &Path,
    out: &Path,
    (r, current): (i64, i64),
    rev: i64,
    version: &str,
    what: &str,
) -> Result<String, Failed> {
    let name = if rev == 0 { "hashkv0" } else { "hashkv" };
    let rev_s = rev.to_string();
    let o = boltpack(&[
        "hashkv",
        s(out),
        "--rev",
        &rev_s,
        "--json",
        "--etcd-version",
        version,
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let err = served.join(format!("{name}.err"));
    if err.exists() {
        let theirs = std::fs::read_to_string(err)?;
        assert!(
            theirs.contains("required revision has been compacted"),
            "{what}: etcd's hashkv --rev {rev}: {theirs}"
        );
        assert_eq!(
            o.status.code(),
            Some(1),
            "{what}: etcd refused hashkv --rev {rev} ({theirs}), we answered {}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(stderr.contains("compacted"), "{what}: {stderr}");
        return Ok(format!("--rev {rev}: refused as compacted by both"));
    }
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: etcd answered hashkv --rev {rev}, we failed: {stderr}"
    );
    let ours: Value = serde_json::from_slice(&o.stdout)?;
    let theirs = read_json(&served.join(format!("{name}.json")))?;
    let theirs = &theirs[0]["HashKV"];
    assert_eq!(ours["hash"], theirs["hash"], "{what}: hashkv --rev {rev}");
    assert_eq!(ours["compact_revision"], r, "{what}: our compact revision");
    assert_eq!(
        theirs["compact_revision"], r,
        "{what}: etcd's compact revision"
    );
    assert_eq!(
        theirs["header"]["revision"], current,
        "{what}: hashkv header"
    );
    assert_eq!(ours["revision"], current, "{what}: our current revision");
    Ok(format!(
        "--rev {rev}: {} (compact revision {r}) by both",
        theirs["hash"]
    ))
}

fn compact(info: &SrcInfo, out: &Path, r: i64, rule: &str) -> Output {
    boltpack(&[
        "compact",
        s(&info.path),
        "-o",
        s(out),
        "--revision",
        &r.to_string(),
        "--tombstone-at-rev",
        rule,
        "--json",
    ])
}

fn trial_dir(src: Src, label: &str) -> Result<PathBuf, Failed> {
    let dir = tmp().join(src.name()).join(label);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Restore `out` into a real etcd (`etcd-serve.sh`, with `env`) and record its answers for
/// R..=current in `dir/served`.
fn serve_copy(
    out: &Path,
    dir: &Path,
    r: i64,
    info: &SrcInfo,
    env: &[(String, String)],
) -> Result<PathBuf, String> {
    let served = dir.join("served");
    script_env(
        "etcd-serve.sh",
        &[
            s(out),
            s(&dir.join("work")),
            s(&served),
            &r.to_string(),
            &info.current.to_string(),
        ],
        env,
    )?;
    Ok(served)
}

/// The copy's etcd serves what the source's does at every R'..=current, and refuses R-1 as
/// compacted. Returns the kvs compared.
fn served_like_source(
    served: &Path,
    src: Src,
    r: i64,
    info: &SrcInfo,
    what: &str,
) -> Result<usize, Failed> {
    let reference = reference(src)?;
    let mut total = 0;
    for rr in r..=info.current {
        total += compare_get(served, &reference, rr, what)?;
    }
    if r > 1 {
        let below = std::fs::read_to_string(served.join("below.txt"))?;
        assert!(
            !below.starts_with("exit=0") && below.contains("required revision has been compacted"),
            "{what}: get --rev {} on the copy: {below}",
            r - 1
        );
    }
    Ok(total)
}

/// Compact at R, serve the copy from a real etcd, compare with the source's etcd.
fn serve(src: Src, label: &str, at: At, rule: &str, version: &str) -> Result<(), Failed> {
    let info = src_info(src)?;
    let r = at.resolve(&info)?;
    let what = format!("{} R={r} --tombstone-at-rev {rule}", src.name());
    assert!(
        r > info.compacted.unwrap_or(0) && r <= info.current,
        "{what}"
    );
    let dir = trial_dir(src, label)?;
    let out = dir.join("out.db");
    let src_hash = sha256_file(&info.path);

    // 1. compact
    let o = compact(&info, &out, r, rule);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: compact failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout)?;
    let sum = &report["summary"];
    assert_eq!(sum["verified"], true, "{what}: {report}");
    assert_eq!(report["mvcc"]["revision"], r, "{what}: {report}");
    assert_eq!(report["mvcc"]["current_revision"], info.current, "{what}");
    assert_eq!(
        src_hash,
        sha256_file(&info.path),
        "{what}: the source changed"
    );
    let (src_bytes, out_bytes) = (
        std::fs::metadata(&info.path)?.len(),
        std::fs::metadata(&out)?.len(),
    );
    assert_eq!(out_bytes, sum["dst_size_bytes"].as_u64().unwrap(), "{what}");

    // What the plan left on disk: nothing <= R but one revision per live key, and the
    // tombstones at R only under `keep`.
    let before = key_revisions(&info.path)?;
    let after = key_revisions(&out)?;
    let tombs_at_r = |v: &[(i64, i64, bool)]| v.iter().filter(|x| x.0 == r && x.2).count();
    let above = |v: &[(i64, i64, bool)]| v.iter().filter(|x| x.0 > r).count();
    assert_eq!(above(&after), above(&before), "{what}: revisions above R");
    let expect_tombs = if rule == "keep" {
        tombs_at_r(&before)
    } else {
        0
    };
    assert_eq!(tombs_at_r(&after), expect_tombs, "{what}: tombstones at R");
    assert!(
        after.iter().all(|x| x.0 >= r || !x.2),
        "{what}: a tombstone below R survived"
    );
    assert_eq!(
        before.len() - after.len(),
        sum["revisions_removed"].as_u64().unwrap() as usize,
        "{what}: revisions_removed"
    );
    eprintln!(
        "SIZE {what}: src {src_bytes} bytes -> out {out_bytes} bytes ({:.1}%), key entries {} -> {}",
        100.0 * out_bytes as f64 / src_bytes as f64,
        before.len(),
        after.len()
    );

    // 2.-5. serve it
    let served = serve_copy(&out, &dir, r, &info, &[])?;
    let total = served_like_source(&served, src, r, &info, &what)?;
    let hash = [info.current, 0]
        .map(|rev| compare_hashkv(&served, &out, (r, info.current), rev, version, &what))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .join("; ");
    let status = read_json(&served.join("status.json"))?;
    assert_eq!(
        status[0]["Status"]["header"]["revision"], info.current,
        "{what}: endpoint status revision"
    );
    let put = read_json(&served.join("put.json"))?;
    assert_eq!(
        put["header"]["revision"],
        info.current + 1,
        "{what}: the next put's revision"
    );
    eprintln!(
        "OK   {what}: {} revisions served identically ({total} kvs); hashkv {hash}; next put at {}",
        info.current - r + 1,
        info.current + 1
    );
    Ok(())
}

/// R at or below the compacted revision: exit 1 with etcd's message, as `hashkv --rev R`
/// (the same code), and no output.
fn compacted(src: Src, label: &str, at: At) -> Result<(), Failed> {
    let info = src_info(src)?;
    let r = at.resolve(&info)?;
    let c = info.compacted.ok_or("never compacted")?;
    assert!(r <= c, "R={r} is above the compacted revision {c}");
    let dir = trial_dir(src, label)?;
    let out = dir.join("out.db");
    let o = compact(&info, &out, r, "keep");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let want = format!("revision {r} is at or below the compacted revision {c}");
    assert!(err.contains(&want), "{err:?} lacks {want:?}");
    assert!(err.contains("omit --revision to only defragment"), "{err}");
    let h = boltpack(&["hashkv", s(&info.path), "--rev", &r.to_string()]);
    assert_eq!(
        h.status.code(),
        o.status.code(),
        "hashkv --rev {r}: same code"
    );
    assert!(!out.exists(), "an output was written");
    assert_eq!(std::fs::read_dir(&dir)?.count(), 0, "a temp file was left");
    Ok(())
}

/// R at or below the compacted revision of a never-compacted file (R = 0): exit 0,
/// nothing compacted, same content.
fn noop(src: Src, label: &str, at: At, version: &str) -> Result<(), Failed> {
    let info = src_info(src)?;
    let r = at.resolve(&info)?;
    let what = format!("{} R={r}", src.name());
    assert!(r <= info.compacted.unwrap_or(0), "{what}");
    let dir = trial_dir(src, label)?;
    let out = dir.join("out.db");
    let o = compact(&info, &out, r, "keep");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout)?;
    let m = &report["mvcc"];
    assert!(m["revision"].is_null(), "{what}: {report}");
    let note = m["note"].as_str().ok_or("no note")?;
    assert!(note.contains("nothing to compact"), "{what}: {note}");
    assert_eq!(report["summary"]["revisions_removed"], 0, "{what}");
    assert_eq!(report["summary"]["verified"], true, "{what}");
    assert_eq!(
        key_revisions(&out)?,
        key_revisions(&info.path)?,
        "{what}: key bucket"
    );
    let (a, b) = (
        hashkv_json(&out, version)?,
        hashkv_json(&info.path, version)?,
    );
    for f in ["hash", "compact_revision", "revision"] {
        assert_eq!(a[f], b[f], "{what}: hashkv {f}");
    }
    eprintln!(
        "SIZE {what} (nothing to compact, defragmented only): src {} bytes -> out {} bytes",
        std::fs::metadata(&info.path)?.len(),
        std::fs::metadata(&out)?.len()
    );
    Ok(())
}

/// R above the current revision: a clear error, no output.
fn future(src: Src, label: &str) -> Result<(), Failed> {
    let info = src_info(src)?;
    let r = info.current + 1;
    let dir = trial_dir(src, label)?;
    let out = dir.join("out.db");
    let o = compact(&info, &out, r, "keep");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "R={r} above current was accepted");
    // The same code as `hashkv --rev` gives a future revision.
    assert_eq!(o.status.code(), Some(1), "{err}");
    let want = format!(
        "revision {r} is above the current revision {}",
        info.current
    );
    assert!(err.contains(&want), "{err:?} lacks {want:?}");
    assert!(!out.exists(), "an output was written");
    assert_eq!(std::fs::read_dir(&dir)?.count(), 0, "a temp file was left");
    Ok(())
}

/// The report's `buckets` and `keys` count what the copy holds, inline buckets included,
/// and `revisions_removed` what left the `key` bucket, inline or not (regression: inline
/// buckets were not counted, so a small etcd db reported 0 revisions removed).
fn report_counts(src: Src, label: &str) -> Result<(), Failed> {
    let info = src_info(src)?;
    let r = info.rev("tomb")?;
    let dir = trial_dir(src, label)?;
    let out = dir.join("out.db");
    let o = compact(&info, &out, r, "drop");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout)?;
    let sum = &report["summary"];
    let d = boltpack(&["dump", s(&out), "--hash-values"]);
    assert_eq!(d.status.code(), Some(0));
    let (mut buckets, mut keys) = (0, 0);
    for line in String::from_utf8(d.stdout)?.lines() {
        let e: Value = serde_json::from_str(line)?;
        if e.get("key").is_some() {
            keys += 1;
        } else {
            buckets += 1;
        }
    }
    assert_eq!(sum["keys"], keys, "{}: keys in the copy", src.name());
    assert_eq!(
        sum["buckets"],
        buckets,
        "{}: buckets in the copy",
        src.name()
    );
    let removed = key_revisions(&info.path)?.len() - key_revisions(&out)?.len();
    assert!(removed > 0);
    assert_eq!(sum["revisions_removed"], removed, "{}", src.name());
    Ok(())
}

/// `--keep-revisions N` is `--revision current-N`, byte for byte.
fn keep_revisions(src: Src, label: &str) -> Result<(), Failed> {
    let info = src_info(src)?;
    let r = info.rev("tomb")?;
    let dir = trial_dir(src, label)?;
    let (a, b) = (dir.join("a.db"), dir.join("b.db"));
    let o = compact(&info, &a, r, "keep");
    assert_eq!(o.status.code(), Some(0));
    let n = (info.current - r).to_string();
    let o = boltpack(&[
        "compact",
        s(&info.path),
        "-o",
        s(&b),
        "--keep-revisions",
        &n,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(sha256_file(&a), sha256_file(&b));
    Ok(())
}

/// A snapshot's compacted copy restores like the original (issue 10): it ends in its own
/// SHA-256 trailer, so `snapshot restore` (etcdctl 3.4, etcdutl 3.5) takes it without
/// `--skip-hash-check`, and the etcd started on it serves what the source serves at every
/// revision from R, refuses R-1 as compacted and takes a put at current+1. `file` is the
/// source (for the fixture: its `snapshot save` file); `extra` flags such as
/// `--snapshot-trailer yes` for a member db. The same copy without its trailer is refused
/// by the checked restore: that is what the operator hit before.
fn restore_checked(
    src: Src,
    file: Option<PathBuf>,
    at: At,
    extra: &'static [&'static str],
    peer: EtcdPeer,
) -> Result<(), Failed> {
    let info = src_info(src)?;
    let path = file.unwrap_or_else(|| info.path.clone());
    let r = at.resolve(&info)?;
    let what = format!(
        "{} R={r} {extra:?} restored by {}",
        src.name(),
        peer.label()
    );
    let dir = trial_dir(src, &format!("restore_{}_{}", peer.label(), extra.len()))?;
    let out = dir.join("out.db");
    let mut args = vec![
        "compact",
        s(&path),
        "-o",
        s(&out),
        "--revision",
        &r.to_string(),
        "--json",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|a| a.to_string()));
    let o = boltpack(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(report["summary"]["trailer"], true, "{what}: {report}");
    let mut env = peer.env();
    env.push(("ETCDLIB_HASH_CHECK".into(), "1".into()));
    let served = serve_copy(&out, &dir, r, &info, &env).map_err(|e| format!("{what}: {e}"))?;
    let total = served_like_source(&served, src, r, &info, &what)?;
    let put = read_json(&served.join("put.json"))?;
    assert_eq!(put["header"]["revision"], info.current + 1, "{what}");

    // The control: the same copy without a trailer is refused by the checked restore.
    let bare = dir.join("bare.db");
    let o = boltpack(&[
        "compact",
        s(&path),
        "-o",
        s(&bare),
        "--revision",
        &r.to_string(),
        "--snapshot-trailer",
        "no",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let refused = script_env(
        "etcd-serve.sh",
        &[
            s(&bare),
            s(&dir.join("work-bare")),
            s(&dir.join("served-bare")),
            "1",
            "1",
        ],
        &env,
    );
    let why = refused.expect_err("a restore with the hash check took a copy without trailer");
    assert!(why.contains("snapshot missing hash"), "{what}: {why}");
    eprintln!(
        "OK   {what}: restored with the hash check, {} revisions served identically ({total} kvs)",
        info.current - r + 1
    );
    Ok(())
}

/// A `restore_checked` trial: name, source, its file (None: the source's own), R, flags.
type RestoreCase = (String, Src, Option<PathBuf>, At, &'static [&'static str]);

/// Trials on the fresh history need a live etcd; those on the fixture alone do not.
fn prefix(src: Src) -> &'static str {
    if src == Src::Fixture {
        ""
    } else {
        "live_etcd::"
    }
}

fn main() {
    let args = Arguments::from_args();
    let avail = etcd_version();
    // Without etcd, the fixture-only trials apply the rules of the fixture's etcd.
    let version = avail.clone().unwrap_or_else(|_| "3.4.23".into());
    // (trial, needs a live etcd)
    let mut trials: Vec<(Trial, bool)> = Vec::new();
    let mut add_serve = |src: Src, label: &'static str, at: At, rule: &'static str| {
        let v = version.clone();
        trials.push((
            Trial::test(
                format!("live_etcd::compact::{}::{label}", src.name()),
                move || serve(src, label, at, rule, &v),
            ),
            true,
        ));
    };
    use At::*;
    // The committed fixture: current 218, compacted 166.
    add_serve(Src::Fixture, "r218_current", Current, "keep");
    add_serve(Src::Fixture, "r207_tombstone_keep", Named("tomb"), "keep");
    add_serve(Src::Fixture, "r207_tombstone_drop", Named("tomb"), "drop");
    add_serve(Src::Fixture, "r212_txn_keep", Named("txn"), "keep");
    add_serve(Src::Fixture, "r212_txn_drop", Named("txn"), "drop");
    add_serve(Src::Fixture, "r211_put", Named("put"), "keep");
    add_serve(
        Src::Fixture,
        "r167_compacted_plus_1",
        AfterCompacted,
        "keep",
    );
    // Fresh, never compacted (snapshot save).
    add_serve(Src::Pre, "current", Current, "keep");
    add_serve(Src::Pre, "tombstone_keep", Named("tomb"), "keep");
    add_serve(Src::Pre, "tombstone_drop", Named("tomb"), "drop");
    add_serve(Src::Pre, "txn_keep", Named("txn"), "keep");
    add_serve(Src::Pre, "put", Named("put"), "keep");
    add_serve(Src::Pre, "r2_first", Fixed(2), "keep");
    // Fresh member db, compacted online once.
    add_serve(Src::Final, "current", Current, "keep");
    add_serve(Src::Final, "tombstone_keep", Named("tomb"), "keep");
    add_serve(Src::Final, "tombstone_drop", Named("tomb"), "drop");
    add_serve(Src::Final, "txn_keep", Named("txn"), "keep");
    add_serve(Src::Final, "txn_drop", Named("txn"), "drop");
    add_serve(
        Src::Final,
        "lease_tombstone_keep",
        Named("lease_tomb"),
        "keep",
    );
    add_serve(Src::Final, "put", Named("put"), "keep");
    add_serve(Src::Final, "compacted_plus_1", AfterCompacted, "keep");
    // Fresh and tiny: every bucket inline, in the source and in the copy.
    add_serve(Src::Tiny, "current", Current, "keep");
    add_serve(Src::Tiny, "tombstone_keep", Named("tomb"), "keep");
    add_serve(Src::Tiny, "tombstone_drop", Named("tomb"), "drop");

    for (src, label, at) in [
        (Src::Fixture, "compacted_r166", At::Fixed(166)),
        (Src::Fixture, "compacted_r100", At::Fixed(100)),
        (Src::Final, "compacted_at_compacted", At::Compacted),
        (Src::Final, "compacted_r10", At::Fixed(10)),
    ] {
        trials.push((
            Trial::test(
                format!("{}compact::{}::{label}", prefix(src), src.name()),
                move || compacted(src, label, at),
            ),
            src != Src::Fixture,
        ));
    }
    let v = version.clone();
    trials.push((
        Trial::test(
            format!("{}compact::{}::noop_r0", prefix(Src::Pre), Src::Pre.name()),
            move || noop(Src::Pre, "noop_r0", At::Fixed(0), &v),
        ),
        true,
    ));
    for src in [Src::Fixture, Src::Pre, Src::Final, Src::Tiny] {
        trials.push((
            Trial::test(
                format!("{}compact::{}::future_revision", prefix(src), src.name()),
                move || future(src, "future_revision"),
            ),
            src != Src::Fixture,
        ));
    }
    trials.push((
        Trial::test("compact::fixture::report_counts", || {
            report_counts(Src::Fixture, "report_counts")
        }),
        false,
    ));
    trials.push((
        Trial::test("live_etcd::compact::fresh_tiny::report_counts", || {
            report_counts(Src::Tiny, "report_counts")
        }),
        true,
    ));
    trials.push((
        Trial::test("compact::fixture::keep_revisions", || {
            keep_revisions(Src::Fixture, "keep_revisions")
        }),
        false,
    ));
    let mut trials: Vec<Trial> = trials
        .into_iter()
        .map(|(t, live)| t.with_ignored_flag(live && avail.is_err()))
        .collect();
    let avail35 = if args.list {
        Ok(String::new())
    } else {
        EtcdPeer::V35.available()
    };
    let snapshot = || Some(repo().join("testdata/etcd/snapshot.db"));
    for peer in [EtcdPeer::V34, EtcdPeer::V35] {
        let missing = avail.is_err() || (peer == EtcdPeer::V35 && avail35.is_err());
        let l = peer.label();
        let restores: [RestoreCase; 3] = [
            (
                format!("fixture_snapshot_r207::{l}"),
                Src::Fixture,
                snapshot(),
                At::Named("tomb"),
                &[],
            ),
            (
                format!("fresh_pre_txn::{l}"),
                Src::Pre,
                None,
                At::Named("txn"),
                &[],
            ),
            (
                format!("fresh_final_member_db_trailer_yes::{l}"),
                Src::Final,
                None,
                At::Named("put"),
                &["--snapshot-trailer", "yes"],
            ),
        ];
        for (name, src, file, at, extra) in restores {
            trials.push(
                Trial::test(format!("live_etcd::restore_checked::{name}"), move || {
                    restore_checked(src, file, at, extra, peer)
                })
                .with_ignored_flag(missing),
            );
        }
    }
    gate_peer("etcd peer", &avail);
    gate_peer("etcd 3.5 peer", &avail35);
    libtest_mimic::run(&args, trials).exit();
}
