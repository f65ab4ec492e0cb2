//! `boltpack pages` (one line per page) and `boltpack page` (one page decoded).

use std::fmt::Write;

use serde::Serialize;
use serde_json::{Value, json};

use boltpack::error::Result;
use boltpack::format::PageId;
use boltpack::format::freelist::FreelistView;
use boltpack::format::meta::Meta;
use boltpack::format::page::PageKind;
use boltpack::reader::show_path;
use boltpack::reader::{Db, Node};
use boltpack::reader::{PageMap, PageUse};

use crate::{hex, text_or_hex};

#[derive(Debug, Serialize)]
pub struct PageLine {
    pub id: PageId,
    /// meta, freelist, branch, leaf, overflow, free, unreachable
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub items: Option<u64>,
    pub overflow: Option<u32>,
    /// Owning bucket path (names as text or 0x-hex), for branch/leaf/overflow pages.
    pub bucket: Option<String>,
}

pub fn page_lines(db: &Db, map: &PageMap) -> Vec<PageLine> {
    let mut out = Vec::with_capacity(map.uses.len());
    for (i, u) in map.uses.iter().enumerate() {
        let id = i as PageId;
        let kind = match u {
            PageUse::Meta => "meta",
            PageUse::Freelist => "freelist",
            PageUse::Branch => "branch",
            PageUse::Leaf => "leaf",
            PageUse::Overflow => "overflow",
            PageUse::Unreached if map.free[i] => "free",
            PageUse::Unreached => "unreachable",
        };
        let headed = matches!(
            u,
            PageUse::Meta | PageUse::Freelist | PageUse::Branch | PageUse::Leaf
        );
        // Only these pages start with a header: reading one off an overflow or free page
        // would only build an error (costly with many overflow pages).
        let page = if headed { db.page(id).ok() } else { None };
        let header = page.map(|p| p.header);
        let items = match page {
            Some(p) if p.kind() == PageKind::Freelist => FreelistView::parse(&p.header, p.data)
                .ok()
                .map(|v| v.len() as u64),
            Some(p) => Some(u64::from(p.header.count)),
            None => None,
        };
        let bucket = map.owner_path(db, id).map(|p| show_path(&p));
        out.push(PageLine {
            id,
            kind,
            items,
            overflow: header.map(|h| h.overflow),
            bucket,
        });
    }
    out
}

pub fn render_page_lines(lines: &[PageLine]) -> String {
    let mut s = String::from("ID        TYPE         ITEMS   OVERFLOW  BUCKET\n");
    for l in lines {
        let _ = writeln!(
            s,
            "{:<9} {:<12} {:<7} {:<9} {}",
            l.id,
            l.kind,
            l.items.map_or("-".into(), |v| v.to_string()),
            l.overflow.map_or("-".into(), |v| v.to_string()),
            l.bucket.as_deref().unwrap_or("-")
        );
    }
    s
}

/// One page decoded: header and elements (values as hex, cut to `max_value` bytes).
pub fn page_detail(db: &Db, id: PageId, max_value: usize) -> Result<Value> {
    let page = db.page(id)?;
    let h = page.header;
    let offset = db.page_offset(id).unwrap_or(0);
    let mut v = json!({
        "id": id, "offset": offset, "type": h.kind().to_string(), "flags": h.flags,
        "count": h.count, "overflow": h.overflow,
    });
    let cut = |b: &[u8]| {
        let mut s = hex(&b[..b.len().min(max_value)]);
        if b.len() > max_value {
            s.push_str("...");
        }
        s
    };
    // Keys are cut like values: elements of a damaged page may all point at one huge key.
    let cut_key = |b: &[u8]| {
        let mut s = text_or_hex(&b[..b.len().min(max_value)]);
        if b.len() > max_value {
            s.push_str("...");
        }
        s
    };
    match h.kind() {
        PageKind::Meta => {
            let m = Meta::parse(page.data).map_err(|e| {
                boltpack::Error::corrupt(
                    boltpack::error::DamageKind::Meta,
                    id,
                    offset,
                    e.to_string(),
                )
            })?;
            v["meta"] = json!({
                "magic": format!("{:08x}", m.magic), "version": m.version, "page_size_bytes": m.page_size,
                "root": m.root.root, "freelist": m.freelist, "hwm_pages": m.pgid, "txid": m.txid,
                "checksum": format!("{:016x}", m.checksum), "computed_checksum": format!("{:016x}", m.computed_checksum),
                "valid": m.validate().err().map(|e| e.to_string()),
            });
        }
        PageKind::Freelist => {
            let f = FreelistView::parse(&h, page.data)
                .map_err(|e| boltpack::Error::from_format(id, offset, e))?;
            v["free_ids"] = json!(f.ids().collect::<Vec<_>>());
        }
        PageKind::Branch | PageKind::Leaf => {
            let node = Node::new(db, page.data, false)?;
            let mut elems = Vec::new();
            for i in 0..node.count() {
                let at = node.element_offset(i);
                let e = if node.is_leaf() {
                    let raw = node.view.leaf_raw(i).map_err(|e| node.err(e))?;
                    let mut e = json!({"i": i, "offset": at, "flags": raw.flags, "pos": raw.pos, "ksize": raw.ksize, "vsize": raw.vsize});
                    match node.leaf(i) {
                        Ok(l) => {
                            e["key"] = json!(cut_key(l.key));
                            e["value_hex"] = json!(cut(l.value));
                        }
                        Err(err) => e["error"] = json!(err.to_string()),
                    }
                    e
                } else {
                    let raw = node.view.branch_raw(i).map_err(|e| node.err(e))?;
                    let mut e = json!({"i": i, "offset": at, "pos": raw.pos, "ksize": raw.ksize, "child": raw.child});
                    match node.branch(i) {
                        Ok(b) => e["key"] = json!(cut_key(b.key)),
                        Err(err) => e["error"] = json!(err.to_string()),
                    }
                    e
                };
                elems.push(e);
            }
            v["elements"] = json!(elems);
        }
        PageKind::Unknown(_) => {
            v["head_hex"] = json!(cut(&page.data[..page.data.len().min(64)]));
        }
    }
    Ok(v)
}
