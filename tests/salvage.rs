//! `boltpack salvage` over a damage matrix on real etcd dbs: the fixture (etcd 3.4,
//! compacted at 166) and members written now by real etcd 3.4 and 3.5, never compacted and
//! compacted. Damages: a zeroed `key` leaf, a zeroed `key` branch, a run of zeroed pages,
//! garbled element headers, a truncated tail, the root bucket page zeroed. For each:
//! - salvage exits 0 (nothing lost) or 5 (partial), never anything else;
//! - the copy passes Go bbolt's `tx.Check` (boltpeer check);
//! - every entry of the copy is byte-identical to one of the undamaged original;
//! - every original `key` bucket entry missing from the copy lies in a reported lost
//!   revision range, every other missing entry in a bucket reported as damaged;
//! - a real etcd 3.4 restores the copy and serves it.
//!
//! Live trials (`live_etcd::salvage::*`): ignored with a NOTE without the peers; with
//! BOLTPACK_REQUIRE_PEERS=1 a missing peer fails.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{EtcdPeer, boltpack, boltpeer, gate_peer, path_str as s, repo, testdata};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
enum Damage {
    ZeroLeaf,
    ZeroBranch,
    ZeroRun,
    GarbledElements,
    Truncated,
    ZeroRootBucket,
}

const DAMAGES: [Damage; 6] = [
    Damage::ZeroLeaf,
    Damage::ZeroBranch,
    Damage::ZeroRun,
    Damage::GarbledElements,
    Damage::Truncated,
    Damage::ZeroRootBucket,
];

/// Writes `$1/never.db` (a snapshot, never compacted) and `$1/compacted.db` (after an
/// online compaction and more writes), with enough history for a multi-level `key` bucket.
const MAKE: &str = r#"
set -euo pipefail
source "$2/tests/peer/etcd-lib.sh"
W=$1
etcd_start "$W/data"
v=$(head -c 300 /dev/zero | tr '\0' v)
for round in 1 2 3; do
    for i in $(seq 1 150); do
        etcdctl_local put "/registry/pods/ns$((i % 4))/p$i" "$v-$round" >/dev/null
    done
done
for i in $(seq 1 20); do etcdctl_local del "/registry/pods/ns1/p$((i * 4 + 1))" >/dev/null; done
etcdctl_local snapshot save "$W/never.db" >/dev/null
rev=$(etcdctl_local endpoint status -w json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2)
etcdctl_local compact $((rev - 200)) --physical >/dev/null
for i in $(seq 1 60); do etcdctl_local put "/registry/leases/l$i" "$v" >/dev/null; done
etcdctl_local snapshot save "$W/compacted.db" >/dev/null
etcd_stop
"#;

fn pages(db: &Path) -> Result<Vec<Value>, Failed> {
    let o = boltpack(&["pages", s(db), "--no-lock", "-w", "json"]);
    Ok(serde_json::from_slice::<Value>(&o.stdout)?
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn page_size(db: &Path) -> Result<usize, Failed> {
    let o = boltpack(&["info", s(db), "--no-lock", "-w", "json"]);
    Ok(serde_json::from_slice::<Value>(&o.stdout)?["page_size"]
        .as_u64()
        .ok_or("no page size")? as usize)
}

/// Ids of the pages of `kind` owned by the `key` bucket.
fn key_pages(p: &[Value], kind: &str) -> Vec<usize> {
    p.iter()
        .filter(|x| x["type"] == kind && x["bucket"] == "key")
        .map(|x| x["id"].as_u64().unwrap() as usize)
        .collect()
}

fn damage(src: &Path, dst: &Path, d: Damage) -> Result<(), Failed> {
    let mut b = std::fs::read(src)?;
    let ps = page_size(src)?;
    let p = pages(src)?;
    let leaves = key_pages(&p, "leaf");
    let zero = |b: &mut Vec<u8>, id: usize| b[id * ps..(id + 1) * ps].fill(0);
    match d {
        Damage::ZeroLeaf => zero(&mut b, leaves[leaves.len() / 2]),
        Damage::ZeroBranch => {
            let branches = key_pages(&p, "branch");
            zero(&mut b, *branches.last().ok_or("no key branch")?);
        }
        Damage::ZeroRun => {
            let first = leaves[leaves.len() / 3];
            for id in first..first + 3 {
                zero(&mut b, id);
            }
        }
        Damage::GarbledElements => {
            // Every element's `pos` far outside the page.
            let id = leaves[leaves.len() / 2];
            let count = u16::from_le_bytes([b[id * ps + 10], b[id * ps + 11]]) as usize;
            for e in 0..count {
                let at = id * ps + 16 + e * 16 + 4;
                b[at..at + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
            }
        }
        Damage::Truncated => {
            let keep = (b.len() * 7 / 10) / ps * ps;
            b.truncate(keep);
        }
        Damage::ZeroRootBucket => {
            // The active meta's root page: the meta at offset 16 + 8 (root bucket header).
            let info = boltpack(&["info", s(src), "--no-lock", "-w", "json"]);
            let v: Value = serde_json::from_slice(&info.stdout)?;
            let m = &v["metas"][v["active_meta"].as_u64().unwrap() as usize];
            zero(&mut b, m["root"].as_u64().ok_or("no root")? as usize);
        }
    }
    std::fs::write(dst, b)?;
    Ok(())
}

/// `dump` lines of a db, as a set.
fn dump(db: &Path) -> Result<BTreeSet<String>, Failed> {
    let o = boltpack(&["dump", s(db), "--no-lock"]);
    if !o.status.success() {
        return Err(format!(
            "dump {}: {}",
            db.display(),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(o.stdout)?
        .lines()
        .map(String::from)
        .collect())
}

/// The main revision of a `key` bucket dump line, if it is one.
fn key_main(line: &str) -> Option<i64> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v["bucket"] != serde_json::json!(["key"]) {
        return None;
    }
    let hex = v["key"]["hex"].as_str()?;
    i64::from_str_radix(hex.get(..16)?, 16).ok()
}

fn one(src: &Path, label: &str, d: Damage, work: &Path) -> Result<(), Failed> {
    let what = format!("{label} {d:?}");
    let dmg = work.join(format!("{label}-{d:?}.db"));
    let out = work.join(format!("{label}-{d:?}.salvaged.db"));
    let _ = std::fs::remove_file(&out);
    damage(src, &dmg, d)?;
    let o = boltpack(&["salvage", s(&dmg), "--no-lock", "-o", s(&out), "-w", "json"]);
    let code = o.status.code();
    assert!(
        code == Some(0) || code == Some(5),
        "{what}: exit {code:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Value = serde_json::from_slice(&o.stdout)?;
    let peer = boltpeer()?;
    let check = Command::new("timeout")
        .args(["60"])
        .arg(&peer)
        .arg("check")
        .arg(&out)
        .output()?;
    assert!(
        check.status.success(),
        "{what}: Go tx.Check: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let (orig, got) = (dump(src)?, dump(&out)?);
    let invented: Vec<&String> = got.difference(&orig).collect();
    assert!(
        invented.is_empty(),
        "{what}: entries not in the original: {:?}",
        &invented[..invented.len().min(3)]
    );
    let lost_ranges: Vec<(i64, Option<i64>)> = r["lost_revision_ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["from"].as_i64().unwrap(), x["to"].as_i64()))
        .collect();
    let damaged_buckets: BTreeSet<String> = r["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["bucket"].as_str().unwrap().to_string())
        .collect();
    let mut missing_key = 0;
    for line in orig.difference(&got) {
        match key_main(line) {
            Some(m) => {
                missing_key += 1;
                assert!(
                    lost_ranges
                        .iter()
                        .any(|&(f, t)| m >= f && t.is_none_or(|t| m <= t)),
                    "{what}: revision {m} is missing but in no reported lost range {lost_ranges:?}"
                );
            }
            None => assert!(
                !damaged_buckets.is_empty(),
                "{what}: {line} is missing but no damage was reported"
            ),
        }
    }
    if code == Some(0) {
        assert_eq!(
            orig.len(),
            got.len(),
            "{what}: exit 0 but entries are missing"
        );
    }
    eprintln!(
        "SALVAGE {what}: exit {code:?}, kept {} of {} entries, recovered {}, missing key entries {missing_key}",
        got.len(),
        orig.len(),
        r["key_entries_recovered"]
    );
    // A real etcd restores the copy and serves it.
    let o = Command::new("timeout")
        .args(["--kill-after=20", "120", "bash", "-c", RESTORE, "restore"])
        .arg(&out)
        .arg(work.join(format!("{label}-{d:?}-restore")))
        .arg(repo())
        .output()?;
    assert!(
        o.status.success(),
        "{what}: etcd restore/serve: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(())
}

const RESTORE: &str = r#"
set -euo pipefail
source "$3/tests/peer/etcd-lib.sh"
rm -rf "$2"
etcd_restore_and_start "$1" "$2"
etcdctl_local get "" --prefix --keys-only >/dev/null
etcd_stop
"#;

fn source(label: &str, peer: EtcdPeer, work: &Path) -> Result<PathBuf, Failed> {
    if label == "fixture" {
        return Ok(testdata("etcd/db"));
    }
    let (_, file) = label.split_once('-').ok_or("label")?;
    let dir = work.join(format!("gen-{label}"));
    if !dir.join(format!("{file}.db")).exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let o = Command::new("timeout")
            .args(["--kill-after=20", "300", "bash", "-c", MAKE, "make"])
            .arg(&dir)
            .arg(repo())
            .envs(peer.env())
            .output()?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).to_string().into());
        }
    }
    Ok(dir.join(format!("{file}.db")))
}

fn main() {
    let args = Arguments::from_args();
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("salvage");
    std::fs::create_dir_all(&work).unwrap();
    let avail = EtcdPeer::V34
        .available()
        .and_then(|_| boltpeer().map(|_| ()).map_err(|e| e.to_string()));
    gate_peer("etcd 3.4 and Go bbolt peers", &avail);
    let v35 = EtcdPeer::V35.available();
    gate_peer("etcd35 peer", &v35);
    let mut trials = Vec::new();
    for (label, peer) in [
        ("fixture", EtcdPeer::V34),
        ("etcd34-never", EtcdPeer::V34),
        ("etcd34-compacted", EtcdPeer::V34),
        ("etcd35-never", EtcdPeer::V35),
        ("etcd35-compacted", EtcdPeer::V35),
    ] {
        let ignored = avail.is_err() || (peer == EtcdPeer::V35 && v35.is_err());
        let work = work.clone();
        // One trial per source: the sources are generated once, the damages run in turn.
        trials.push(
            Trial::test(format!("live_etcd::salvage::{label}"), move || {
                let src = source(label, peer, &work)?;
                for d in DAMAGES {
                    one(&src, label, d, &work)?;
                }
                Ok(())
            })
            .with_ignored_flag(ignored),
        );
    }
    libtest_mimic::run(&args, trials).exit();
}
