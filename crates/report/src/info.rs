//! `boltpack info`: page size, both metas, the active one, freelist kind, page counts.

use serde::Serialize;

use boltpack::format::meta::Meta;
use boltpack::reader::Db;
use boltpack::reader::{FreelistKind, PageCounts, PageMap};

#[derive(Debug, Serialize)]
pub struct MetaInfo {
    pub page: u64,
    pub valid: bool,
    /// Why the meta is unusable, when it is not valid.
    pub error: Option<String>,
    pub txid: Option<u64>,
    pub root: Option<u64>,
    /// `None` when no freelist page is persisted (NoFreelistSync).
    pub freelist: Option<u64>,
    #[serde(rename = "hwm_pages")]
    pub hwm: Option<u64>,
    #[serde(rename = "page_size_bytes")]
    pub page_size: Option<u32>,
    pub checksum: Option<String>,
    pub checksum_valid: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Info {
    #[serde(rename = "file_size_bytes")]
    pub file_size: u64,
    #[serde(rename = "page_size_bytes")]
    pub page_size: u32,
    /// 0 or 1: the meta bbolt would use.
    pub active_meta: usize,
    pub metas: Vec<MetaInfo>,
    pub txid: u64,
    #[serde(rename = "hwm_pages")]
    pub hwm: u64,
    /// `pgid * page_size`: what the file needs; the rest is preallocation or a trailer.
    #[serde(rename = "used_size_bytes")]
    pub used_size: u64,
    pub freelist: FreelistKind,
    pub pages: PageCounts,
    /// Problems met while mapping the pages (see `boltpack check` for all checks).
    pub problems: usize,
}

fn meta_info(page: u64, m: Option<&Meta>, error: Option<String>) -> MetaInfo {
    MetaInfo {
        page,
        valid: error.is_none(),
        error,
        txid: m.map(|m| m.txid),
        root: m.map(|m| m.root.root),
        freelist: m.and_then(|m| m.has_freelist_page().then_some(m.freelist)),
        hwm: m.map(|m| m.pgid),
        page_size: m.map(|m| m.page_size),
        checksum: m.map(|m| format!("{:016x}", m.checksum)),
        checksum_valid: m.map(|m| m.checksum == m.computed_checksum),
    }
}

impl Info {
    pub fn gather(db: &Db, map: &PageMap) -> Info {
        let metas = db
            .metas()
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                // Show the fields of an invalid meta too, when the bytes are there.
                let raw = db
                    .bytes()
                    .get(slot.offset as usize..)
                    .and_then(|b| Meta::parse(b).ok());
                match &slot.meta {
                    Ok(m) => meta_info(i as u64, Some(m), None),
                    Err(e) => meta_info(i as u64, raw.as_ref(), Some(e.to_string())),
                }
            })
            .collect();
        Info {
            file_size: db.file_size(),
            page_size: db.page_size(),
            active_meta: db.active_index(),
            metas,
            txid: db.meta().txid,
            hwm: db.hwm(),
            used_size: db.hwm().saturating_mul(u64::from(db.page_size())),
            freelist: map.freelist_kind,
            pages: map.counts(),
            problems: map.problems.len(),
        }
    }

    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let ps = u64::from(self.page_size);
        let _ = writeln!(
            s,
            "file size      {} bytes ({} pages)",
            self.file_size,
            self.file_size / ps
        );
        let _ = writeln!(s, "page size      {}", self.page_size);
        let _ = writeln!(
            s,
            "high-water     {} pages = {} bytes{}",
            self.hwm,
            self.used_size,
            if self.file_size > self.used_size {
                format!(
                    " ({} bytes past it: preallocation or a trailer)",
                    self.file_size - self.used_size
                )
            } else if self.file_size < self.used_size {
                " (FILE IS SHORTER: truncated)".to_string()
            } else {
                String::new()
            }
        );
        let _ = writeln!(s, "txid           {}", self.txid);
        let _ = writeln!(
            s,
            "freelist       {}",
            match self.freelist {
                FreelistKind::Page => "persisted freelist page",
                FreelistKind::NotSynced =>
                    "not persisted (NoFreelistSync, as etcd writes): free = unreached pages",
            }
        );
        let _ = writeln!(
            s,
            "\nmeta  active  valid  txid        root      freelist  hwm       checksum"
        );
        for m in &self.metas {
            let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            let _ = writeln!(
                s,
                "{:<5} {:<7} {:<6} {:<11} {:<9} {:<9} {:<9} {}{}",
                m.page,
                if m.page as usize == self.active_meta {
                    "*"
                } else {
                    ""
                },
                if m.valid { "yes" } else { "NO" },
                opt(m.txid),
                opt(m.root),
                m.freelist.map_or_else(
                    || if m.txid.is_some() {
                        "none".into()
                    } else {
                        "-".into()
                    },
                    |f| f.to_string()
                ),
                opt(m.hwm),
                m.checksum.as_deref().unwrap_or("-"),
                m.error
                    .as_ref()
                    .map_or(String::new(), |e| format!("  ({e})")),
            );
        }
        let p = &self.pages;
        let _ = writeln!(s, "\npages          {} below the high-water mark", p.total);
        let _ = writeln!(
            s,
            "  reachable    {} (meta {}, freelist {}, branch {}, leaf {}, overflow {})",
            p.reachable, p.meta, p.freelist, p.branch, p.leaf, p.overflow
        );
        let _ = writeln!(s, "  free         {} ({} bytes)", p.free, p.free * ps);
        let _ = writeln!(
            s,
            "  pending      {} (pending pages live only in a running process)",
            p.pending
        );
        let _ = writeln!(s, "  unreachable  {}", p.unreachable);
        if p.reachable_and_free > 0 {
            let _ = writeln!(s, "  REACHABLE AND FREE {}", p.reachable_and_free);
        }
        if self.problems > 0 {
            let _ = writeln!(
                s,
                "\n{} problems found while mapping pages: run `boltpack check`",
                self.problems
            );
        }
        s
    }
}
