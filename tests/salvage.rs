//! `boltpack salvage` over a damage matrix on real etcd dbs: the fixture (etcd 3.4,
//! compacted at 166) and members written now by real etcd 3.4 and 3.5, never compacted and
//! compacted. Damages: a zeroed `key` leaf, a zeroed `key` branch, a run of zeroed pages,
//! garbled element headers, a truncated tail, the root bucket page zeroed, both metas
//! zeroed, a stale page (another leaf's bytes where a `key` leaf was), branch keys out of
//! order. For each:
//! - salvage exits 0 (nothing lost) or 5 (partial), never anything else;
//! - the copy passes Go bbolt's `tx.Check` (boltpeer check);
//! - every entry of the copy is byte-identical to one of the undamaged original;
//! - every original `key` bucket entry missing from the copy lies in a reported lost
//!   revision range, every other missing entry in a bucket reported as damaged;
//! - at least 99% of the original `key` bucket entries that some intact leaf page of the
//!   damaged file still holds are in the copy;
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
    ZeroMetas,
    StalePage,
    BranchKeysOutOfOrder,
}

const DAMAGES: [Damage; 9] = [
    Damage::ZeroLeaf,
    Damage::ZeroBranch,
    Damage::ZeroRun,
    Damage::GarbledElements,
    Damage::Truncated,
    Damage::ZeroRootBucket,
    Damage::ZeroMetas,
    Damage::StalePage,
    Damage::BranchKeysOutOfOrder,
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
    Ok(serde_json::from_slice::<Value>(&o.stdout)?["pages"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn page_size(db: &Path) -> Result<usize, Failed> {
    let o = boltpack(&["info", s(db), "--no-lock", "-w", "json"]);
    Ok(
        serde_json::from_slice::<Value>(&o.stdout)?["page_size_bytes"]
            .as_u64()
            .ok_or("no page size")? as usize,
    )
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
        Damage::ZeroMetas => {
            zero(&mut b, 0);
            zero(&mut b, 1);
        }
        Damage::BranchKeysOutOfOrder => {
            // Two separator keys of a `key` branch swapped (their children stay put).
            let id = *key_pages(&p, "branch").last().ok_or("no key branch")?;
            let count = u16::from_le_bytes([b[id * ps + 10], b[id * ps + 11]]) as usize;
            let (i, j) = (0, count - 1);
            let elem = |k: usize| id * ps + 16 + k * 16;
            let field = |b: &[u8], at: usize| {
                u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
            };
            let (ki, kj) = (elem(i) + field(&b, elem(i)), elem(j) + field(&b, elem(j)));
            let (si, sj) = (field(&b, elem(i) + 4), field(&b, elem(j) + 4));
            for (e, key, size) in [(elem(i), kj, sj), (elem(j), ki, si)] {
                b[e..e + 4].copy_from_slice(&((key - e) as u32).to_le_bytes());
                b[e + 4..e + 8].copy_from_slice(&(size as u32).to_le_bytes());
            }
        }
        Damage::StalePage => {
            // A torn write that left an older page image: another leaf's bytes, its own
            // header id included, where a `key` leaf sits.
            let (from, to) = (leaves[0], leaves[leaves.len() / 2]);
            let image = b[from * ps..(from + 1) * ps].to_vec();
            b[to * ps..(to + 1) * ps].copy_from_slice(&image);
        }
    }
    std::fs::write(dst, b)?;
    Ok(())
}

/// Keys (hex) of the revision entries on every intact leaf page of `db`: a page whose
/// header id is its position, leaf flag, elements inside the page, keys ascending, every
/// key shaped as a revision key (8-byte main, `_`, 8-byte sub, optional `t`).
fn revision_keys_on_intact_leaves(db: &[u8], ps: usize) -> BTreeSet<String> {
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    let u32_at =
        |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let mut out = BTreeSet::new();
    for (id, page) in db.chunks_exact(ps).enumerate().skip(2) {
        let hid = u64::from_le_bytes(page[..8].try_into().unwrap());
        let (flags, count) = (u16_at(page, 8), u16_at(page, 10));
        if hid != id as u64 || flags != 0x02 || count == 0 || 16 + count * 16 > ps {
            continue;
        }
        let mut keys = Vec::new();
        for e in 0..count {
            let at = 16 + e * 16;
            let (pos, ks) = (u32_at(page, at + 4), u32_at(page, at + 8));
            let Some(key) = page.get(at + pos..at + pos + ks) else {
                keys.clear();
                break;
            };
            if !(ks == 17 || ks == 18) || key[8] != b'_' {
                keys.clear();
                break;
            }
            keys.push(key);
        }
        if keys.windows(2).all(|w| w[0] < w[1]) {
            out.extend(
                keys.iter()
                    .map(|k| k.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            );
        }
    }
    out
}

/// The key (hex) of a `key` bucket dump line.
fn key_hex(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    (v["bucket"] == serde_json::json!(["key"]))
        .then(|| v["key"]["hex"].as_str().map(String::from))?
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
    let dmg = work.join(format!("{label}-{d:?}.db"));
    damage(src, &dmg, d)?;
    let unknown = salvaged(src, &dmg, &format!("{label} {d:?}"), &[], work)?;
    if unknown {
        // `meta` lost with the root: the operator names the compact revision (here the
        // original's, as `boltpack hashkv` of a backup would print it).
        let h = boltpack(&["hashkv", s(src), "--no-lock", "-w", "json"]);
        let v: Value = serde_json::from_slice(&h.stdout)?;
        let c = v["compact_revision"]
            .as_i64()
            .ok_or("no compact revision")?
            .max(0);
        let what = format!("{label} {d:?} --compact-revision {c}");
        salvaged(
            src,
            &dmg,
            &what,
            &["--compact-revision", &c.to_string()],
            work,
        )?;
    }
    Ok(())
}

/// Salvage `dmg` (damaged from `src`) with `extra` arguments and check the copy; true
/// when the report says the compact revision is unknown.
fn salvaged(
    src: &Path,
    dmg: &Path,
    what: &str,
    extra: &[&str],
    work: &Path,
) -> Result<bool, Failed> {
    let tag = what.replace([' ', '-'], "_");
    let out = work.join(format!("{tag}.salvaged.db"));
    let _ = std::fs::remove_file(&out);
    let args = [
        &["salvage", s(dmg), "--no-lock", "-o", s(&out), "-w", "json"][..],
        extra,
    ]
    .concat();
    let o = boltpack(&args);
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
    // Of the original's entries some intact leaf page still holds above the compact
    // revision (at or below it the rule takes only provable survivors from pages outside
    // the tree; with `meta` lost and no copy of the root the revision is unknown, so none),
    // the copy has >= 99%.
    let orig_keys: BTreeSet<String> = orig.iter().filter_map(|l| key_hex(l)).collect();
    let got_keys: BTreeSet<String> = got.iter().filter_map(|l| key_hex(l)).collect();
    let on_leaves = revision_keys_on_intact_leaves(&std::fs::read(dmg)?, page_size(src)?);
    let held: Vec<&String> = on_leaves.intersection(&orig_keys).collect();
    let main_of = |k: &str| i64::from_str_radix(&k[..16], 16).unwrap();
    let guard = r["compact_revision"].as_i64();
    let (above, below): (Vec<&String>, Vec<&String>) = held
        .iter()
        .partition(|k| guard.is_some_and(|c| main_of(k) > c));
    let kept = above.iter().filter(|k| got_keys.contains(**k)).count();
    let kept_below = below.iter().filter(|k| got_keys.contains(**k)).count();
    assert!(
        kept * 100 >= above.len() * 99,
        "{what}: only {kept} of the {} entries intact leaves hold above the compact revision {guard:?} are in the copy",
        above.len()
    );
    if code == Some(0) {
        assert_eq!(
            orig.len(),
            got.len(),
            "{what}: exit 0 but entries are missing"
        );
    }
    eprintln!(
        "SALVAGE {what}: exit {code:?}, kept {} of {} entries, recovered {}, missing key entries {missing_key}; held by intact leaves: {kept} of {} above the compact revision {guard:?}, {kept_below} of {} at or below it",
        got.len(),
        orig.len(),
        r["key_entries_recovered"],
        above.len(),
        below.len()
    );
    // A real etcd restores the copy and serves it.
    let o = Command::new("timeout")
        .args(["--kill-after=20", "120", "bash", "-c", RESTORE, "restore"])
        .arg(&out)
        .arg(work.join(format!("{tag}-restore")))
        .arg(repo())
        .output()?;
    assert!(
        o.status.success(),
        "{what}: etcd restore/serve: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(guard.is_none())
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
