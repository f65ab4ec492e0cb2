//! Two backups of one cluster compared: what changed between them, in total and per key
//! group (the grouping of `analyze`), from the live key-values of each at its current
//! revision (what `etcdctl get "" --prefix` answered when each was taken) and the history
//! NEW wrote after OLD's revision.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::Result;
use crate::etcd::{GetError, KeyRange, KeyValue, Revisions, Rules, get};
use crate::reader::{Bucket, Db};

use super::kinds::object_kind;
use super::tables::group_of;

/// One side of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct DiffSide {
    pub file_size_bytes: u64,
    pub revision: i64,
    /// `None`: never compacted.
    pub compacted_revision: Option<i64>,
    /// Member ids in the `members` bucket.
    pub members: Vec<String>,
}

/// The changes of one key group, or of all keys.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DiffFigures {
    /// Live in NEW, not in OLD.
    pub added_keys: u64,
    /// Live in OLD, not in NEW.
    pub removed_keys: u64,
    /// Live in both, with a newer mod revision in NEW.
    pub changed_keys: u64,
    pub live_keys_old: u64,
    pub live_keys_new: u64,
    /// Sum of the live values' lengths.
    pub value_bytes_old: u64,
    pub value_bytes_new: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffGroup {
    pub prefix: String,
    #[serde(flatten)]
    pub figures: DiffFigures,
}

/// A key whose live value grew (or appeared).
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    pub key: String,
    pub value_bytes_old: u64,
    pub value_bytes_new: u64,
    pub growth_bytes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub old: DiffSide,
    pub new: DiffSide,
    /// NEW's revision minus OLD's (negative: NEW is the older backup).
    pub revisions_written: i64,
    /// Bytes of NEW's `key` bucket entries above OLD's revision (keys and values).
    pub history_bytes_added: u64,
    pub total: DiffFigures,
    /// Largest change first (by value bytes moved, then keys).
    pub groups: Vec<DiffGroup>,
    /// The same figures by object kind (`apps/v1 Deployment`, of the newest live value),
    /// in `prefix`.
    pub kinds: Vec<DiffGroup>,
    pub top_growth: Vec<Growth>,
}

/// How to group and how many top keys.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub prefix_depth: usize,
    pub by_namespace: bool,
    pub k8s_prefixes: Vec<String>,
    pub top: usize,
}

/// Why two files are not compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(
        "the two files share no member (OLD: {old:?}, NEW: {new:?}): they look like backups of \
         different clusters"
    )]
    OtherCluster { old: Vec<String>, new: Vec<String> },
    #[error(transparent)]
    Read(#[from] crate::error::Error),
}

fn side(db: &Db) -> Result<DiffSide> {
    let (_, revs) = Revisions::read(db, &Rules::default())?;
    let mut members = Vec::new();
    if let Some(b) = Bucket::root_of(db).bucket(b"members")? {
        for e in b.iter() {
            members.push(crate::format::text::text_or_hex(e?.key));
        }
    }
    Ok(DiffSide {
        file_size_bytes: db.file_size(),
        revision: revs.current,
        compacted_revision: (revs.compacted >= 0).then_some(revs.compacted),
        members,
    })
}

fn live<'a>(db: &'a Db) -> Result<Vec<KeyValue<'a>>> {
    match get(db, &KeyRange::From(Vec::new()), 0, 0) {
        Ok(r) => Ok(r.kvs),
        Err(GetError::Read(e)) => Err(e),
        // Only a file whose compacted revision is above its last key gets here.
        Err(e) => Err(crate::error::Error::Revision(e.to_string())),
    }
}

/// Compare OLD and NEW. `any_cluster`: compare even when they share no member.
pub fn diff(
    old: &Db,
    new: &Db,
    opts: &DiffOptions,
    any_cluster: bool,
) -> std::result::Result<Diff, DiffError> {
    let (so, sn) = (side(old)?, side(new)?);
    let shared: BTreeSet<&String> = so.members.iter().collect();
    if !any_cluster
        && !so.members.is_empty()
        && !sn.members.is_empty()
        && !sn.members.iter().any(|m| shared.contains(m))
    {
        return Err(DiffError::OtherCluster {
            old: so.members,
            new: sn.members,
        });
    }
    let (lo, ln) = (live(old)?, live(new)?);
    let mut groups: BTreeMap<String, DiffFigures> = BTreeMap::new();
    let mut kinds: BTreeMap<String, DiffFigures> = BTreeMap::new();
    let mut total = DiffFigures::default();
    let mut growth = Vec::new();
    let group = |k: &[u8]| group_of(k, opts.prefix_depth, opts.by_namespace, &opts.k8s_prefixes);
    let (mut i, mut j) = (0, 0);
    while i < lo.len() || j < ln.len() {
        let (o, n) = match (lo.get(i), ln.get(j)) {
            (Some(o), Some(n)) if o.key == n.key => (Some(o), Some(n)),
            (Some(o), Some(n)) if o.key < n.key => (Some(o), None),
            (Some(_), Some(n)) => (None, Some(n)),
            (o, n) => (o, n),
        };
        i += usize::from(o.is_some());
        j += usize::from(n.is_some());
        let key = o.or(n).map(|kv| kv.key).unwrap_or_default();
        let value = n.or(o).map(|kv| kv.value).unwrap_or_default();
        let g = groups.entry(group(key)).or_default();
        let k = kinds.entry(object_kind(value).label()).or_default();
        for f in [&mut *g, &mut *k, &mut total] {
            tally(f, o, n);
        }
        let (ob, nb) = (len(o), len(n));
        if nb > ob {
            growth.push(Growth {
                key: crate::format::text::text_or_hex(key),
                value_bytes_old: ob,
                value_bytes_new: nb,
                growth_bytes: nb as i64 - ob as i64,
            });
        }
    }
    growth.sort_by(|a, b| b.growth_bytes.cmp(&a.growth_bytes).then(a.key.cmp(&b.key)));
    growth.truncate(opts.top);
    let (groups, kinds) = (largest_first(groups), largest_first(kinds));
    Ok(Diff {
        revisions_written: sn.revision - so.revision,
        history_bytes_added: history_above(new, so.revision)?,
        old: so,
        new: sn,
        total,
        groups,
        kinds,
        top_growth: growth,
    })
}

/// Rows with the most value bytes moved first, then the most keys changed.
fn largest_first(m: BTreeMap<String, DiffFigures>) -> Vec<DiffGroup> {
    let mut v: Vec<DiffGroup> = m
        .into_iter()
        .map(|(prefix, figures)| DiffGroup { prefix, figures })
        .collect();
    v.sort_by_key(|g| {
        let f = &g.figures;
        std::cmp::Reverse((
            f.value_bytes_new.abs_diff(f.value_bytes_old),
            f.added_keys + f.removed_keys + f.changed_keys,
        ))
    });
    v
}

fn len(kv: Option<&KeyValue<'_>>) -> u64 {
    kv.map_or(0, |kv| kv.value.len() as u64)
}

fn tally(f: &mut DiffFigures, o: Option<&KeyValue<'_>>, n: Option<&KeyValue<'_>>) {
    match (o, n) {
        (Some(o), Some(n)) if n.mod_revision != o.mod_revision => f.changed_keys += 1,
        (None, Some(_)) => f.added_keys += 1,
        (Some(_), None) => f.removed_keys += 1,
        _ => {}
    }
    f.live_keys_old += u64::from(o.is_some());
    f.live_keys_new += u64::from(n.is_some());
    f.value_bytes_old += len(o);
    f.value_bytes_new += len(n);
}

/// Bytes of `db`'s `key` bucket entries whose main revision is above `rev`.
fn history_above(db: &Db, rev: i64) -> Result<u64> {
    let from = crate::etcd::RevisionKey {
        main: rev.saturating_add(1).max(0),
        sub: 0,
        tombstone: false,
    }
    .to_bytes();
    let mut bytes = 0u64;
    for e in crate::etcd::key_bucket(db)?.iter_from(&from)? {
        let e = e?;
        bytes += (e.key.len() + e.value.len()) as u64;
    }
    Ok(bytes)
}
