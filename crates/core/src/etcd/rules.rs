//! Which etcd release to emulate where releases behave differently. Every rule names the
//! releases it comes from (docs/format.md B5, B6, B7). The default is the
//! installed etcd **3.4.23**, which is what the tests compare against.

use std::fmt;

/// The behaviours that changed across etcd 3.4 / 3.5 / 3.6 releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rules {
    /// The release these rules describe, `major.minor.patch`.
    #[serde(serialize_with = "ser_version")]
    pub version: (u32, u32, u32),
    /// `doCompact`: a generation whose tombstone is exactly at the compaction revision is
    /// *kept* (`tomb < R` skips) instead of dropped (`tomb <= R` skips). etcd >= 3.4.34,
    /// >= 3.5.16 and 3.6 ("keep tombstone if revision == compactAtRev").
    pub keep_tombstone_at_rev: bool,
    /// HashKV skips a tombstone whose main equals the compact revision, so old and new
    /// compaction give the same hash. Same releases as `keep_tombstone_at_rev`.
    pub hash_skips_tombstone_at_compact_rev: bool,
    /// HashKV answers "compacted" for `rev <= compact revision` (true: etcd <= 3.4.26,
    /// <= 3.5.9) rather than only for `rev < compact revision` (>= 3.4.27, >= 3.5.10, 3.6).
    pub compacted_includes_compact_rev: bool,
    /// Restore turns a tombstone of a key not yet indexed into a tombstone-only generation
    /// (`restoreTombstone`, etcd >= 3.4.36, >= 3.5.18, 3.6); older releases skip it.
    pub restore_lone_tombstone: bool,
    /// Restore raises the current revision to `scheduledCompactRev` too (etcd >= 3.4.32,
    /// >= 3.5.14, 3.6); older releases only to `finishedCompactRev`.
    pub current_rev_includes_scheduled: bool,
}

fn ser_version<S: serde::Serializer>(v: &(u32, u32, u32), s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}.{}.{}", v.0, v.1, v.2))
}

/// True when `v` is at least the given 3.4 / 3.5 patch release; every 3.6+ is.
fn since(v: (u32, u32, u32), p34: u32, p35: u32) -> bool {
    match v.1 {
        4 => v.2 >= p34,
        5 => v.2 >= p35,
        _ => true,
    }
}

impl Rules {
    /// 3.4.34+ / 3.5.16+ / 3.6: old and new compactions disagree on a tombstone at the
    /// compact revision, so HashKV never counts it.
    pub fn hash_skips_tombstone(&self, r: &super::RevisionKey, compact: i64) -> bool {
        self.hash_skips_tombstone_at_compact_rev && r.tombstone && r.main == compact
    }

    /// The installed etcd: 3.4.23.
    pub const ETCD_3_4_23: Rules = Rules {
        version: (3, 4, 23),
        keep_tombstone_at_rev: false,
        hash_skips_tombstone_at_compact_rev: false,
        compacted_includes_compact_rev: true,
        restore_lone_tombstone: false,
        current_rev_includes_scheduled: false,
    };

    /// Rules of etcd `MAJOR.MINOR[.PATCH]` (3.4, 3.5 and 3.6 are known; a missing patch
    /// means `.0`).
    pub fn for_version(s: &str) -> Result<Rules, String> {
        let bad = || format!("etcd version {s:?}: want MAJOR.MINOR[.PATCH] between 3.4 and 3.6");
        let s2 = s.strip_prefix('v').unwrap_or(s);
        let parts: Vec<u32> = s2
            .split('.')
            .map(|p| p.parse::<u32>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let v = match parts.as_slice() {
            [a, b] => (*a, *b, 0),
            [a, b, c] => (*a, *b, *c),
            _ => return Err(bad()),
        };
        if v.0 != 3 || !(4..=6).contains(&v.1) {
            return Err(bad());
        }
        Ok(Rules {
            version: v,
            keep_tombstone_at_rev: since(v, 34, 16),
            hash_skips_tombstone_at_compact_rev: since(v, 34, 16),
            compacted_includes_compact_rev: !since(v, 27, 10),
            restore_lone_tombstone: since(v, 36, 18),
            current_rev_includes_scheduled: since(v, 32, 14),
        })
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules::ETCD_3_4_23
    }
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "etcd {}.{}.{}",
            self.version.0, self.version.1, self.version.2
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(Rules::for_version("3.4.23").unwrap(), Rules::ETCD_3_4_23);
        assert_eq!(Rules::default(), Rules::ETCD_3_4_23);
        let r = Rules::for_version("3.4.27").unwrap();
        assert!(!r.compacted_includes_compact_rev && !r.keep_tombstone_at_rev);
        let r = Rules::for_version("3.5.16").unwrap();
        assert!(r.keep_tombstone_at_rev && r.current_rev_includes_scheduled);
        assert!(!r.restore_lone_tombstone);
        let r = Rules::for_version("v3.6").unwrap();
        assert!(r.keep_tombstone_at_rev && r.restore_lone_tombstone);
        assert!(!r.compacted_includes_compact_rev);
        assert!(Rules::for_version("3.3.0").is_err());
        assert!(Rules::for_version("3").is_err());
        assert!(Rules::for_version("3.x").is_err());
    }
}
