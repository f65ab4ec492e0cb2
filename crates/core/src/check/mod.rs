//! `boltpack check`: everything Go bbolt's `tx.Check()` verifies (bb136 `tx.go: check`, and
//! the key-order checks of bbolt >= 1.3.7 `tx_check.go`), plus the rules a stricter reader
//! needs: metas, file length, every page below the high-water mark reached once or free.

use crate::error::DamageKind;
use crate::format::meta::Meta;
use crate::reader::{Bucket, Db, plain_key_in_root};
use crate::reader::{FreelistKind, PageMap, PageUse};
use crate::reader::{Problem, Visitor, show_path};

/// All problems found, in a stable order (metas, file, tree walk, freelist, coverage).
pub fn check(db: &Db) -> Vec<Problem> {
    let map = PageMap::build(db);
    check_with_map(db, &map)
}

/// [`check`], with `also` watching the tree walk (one pass over the pages for both).
pub fn check_watched<'a>(db: &'a Db, also: &mut impl Visitor<'a>) -> Vec<Problem> {
    let map = PageMap::build_watched(db, also);
    check_with_map(db, &map)
}

pub fn check_with_map(db: &Db, map: &PageMap) -> Vec<Problem> {
    let mut out = Vec::new();
    metas(db, &mut out);
    let ps = u64::from(db.page_size());
    let hwm = db.hwm();
    if db.file_pages() < hwm {
        out.push(Problem {
            kind: DamageKind::Bounds,
            page: db.file_pages(),
            offset: db.file_size(),
            what: format!(
                "file is {} bytes but the high-water mark {hwm} needs {} ({} pages missing): truncated",
                db.file_size(),
                hwm.saturating_mul(ps),
                hwm - db.file_pages()
            ),
        });
    }
    root_entries(db, &mut out);
    out.extend(map.problems.iter().cloned());
    for (id, (u, &free)) in map.uses.iter().zip(&map.free).enumerate() {
        let id = id as u64;
        let offset = id * ps;
        let reached = *u != PageUse::Unreached;
        if map.freelist_kind == FreelistKind::Page && !reached && !free {
            out.push(Problem {
                kind: DamageKind::Reach,
                page: id,
                offset,
                what: "unreachable unfreed: neither reached from a bucket nor in the freelist"
                    .into(),
            });
        }
        if reached && free {
            out.push(Problem {
                kind: DamageKind::Reach,
                page: id,
                offset,
                what: format!(
                    "reachable freed: a {} page of bucket {} is listed in the freelist",
                    use_name(*u),
                    map.owner_path(db, id)
                        .map(|p| show_path(&p))
                        .unwrap_or_else(|| "-".into())
                ),
            });
        }
    }
    out
}

fn use_name(u: PageUse) -> &'static str {
    match u {
        PageUse::Unreached => "unreached",
        PageUse::Meta => "meta",
        PageUse::Freelist => "freelist",
        PageUse::Branch => "branch",
        PageUse::Leaf => "leaf",
        PageUse::Overflow => "overflow",
    }
}

fn metas(db: &Db, out: &mut Vec<Problem>) {
    for (i, slot) in db.metas().iter().enumerate() {
        let page = i as u64;
        match &slot.meta {
            Err(e) => out.push(Problem {
                kind: DamageKind::Meta,
                page,
                offset: slot.offset,
                what: format!("meta {i} is invalid: {e}"),
            }),
            Ok(m) => meta_fields(db, i, slot.offset, m, out),
        }
    }
}

fn meta_fields(db: &Db, i: usize, offset: u64, m: &Meta, out: &mut Vec<Problem>) {
    let mut bad = |at: u64, what: String| {
        out.push(Problem {
            kind: DamageKind::Meta,
            page: i as u64,
            offset: offset + at,
            what: format!("meta {i}: {what}"),
        })
    };
    if m.checksum_is_zero() {
        bad(
            72,
            "checksum is 0: bbolt 1.3.6 accepts it, bbolt >= 1.3.7 (etcd 3.5+) rejects the meta"
                .into(),
        );
    }
    if m.header.id != i as u64 {
        bad(
            0,
            format!(
                "header says page {}, but the meta sits at position {i}",
                m.header.id
            ),
        );
    }
    // bbolt writes a meta page into a zeroed buffer (`db.init`, `tx.writeMeta`) and never sets
    // these; the checksum does not cover the header, so this is the only sign of damage here.
    if m.header.count != 0 {
        bad(
            10,
            format!("page header count is {}, not 0", m.header.count),
        );
    }
    if m.header.overflow != 0 {
        bad(
            12,
            format!("page header overflow is {}, not 0", m.header.overflow),
        );
    }
    if m.root.root < 2 || m.root.root >= m.pgid {
        bad(
            32,
            format!(
                "root page {} outside [2, high-water mark {})",
                m.root.root, m.pgid
            ),
        );
    }
    if m.has_freelist_page() && (m.freelist < 2 || m.freelist >= m.pgid) {
        bad(
            48,
            format!(
                "freelist page {} outside [2, high-water mark {})",
                m.freelist, m.pgid
            ),
        );
    }
    if i != db.active_index() && m.pgid > db.hwm() && m.txid <= db.meta().txid {
        // An older meta may legitimately have a smaller high-water mark, never a larger one.
        bad(
            56,
            format!(
                "high-water mark {} above the active meta's {}",
                m.pgid,
                db.hwm()
            ),
        );
    }
}

fn root_entries(db: &Db, out: &mut Vec<Problem>) {
    for e in Bucket::root_of(db).iter() {
        match e {
            Ok(e) if !e.is_bucket() => {
                let at = db.offset_of(e.key);
                out.push(Problem {
                    kind: DamageKind::KeyOrder,
                    page: db.page_at(at),
                    offset: at,
                    what: plain_key_in_root(e.key),
                });
            }
            Ok(_) => {}
            Err(_) => break, // the walk reports it
        }
    }
}
