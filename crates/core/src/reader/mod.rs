//! A mapped bbolt file and the ways to walk it: active meta, bounds-checked page access,
//! bucket cursors handing out borrowed keys and values, a whole-tree walk, and the page map.

mod cursor;
mod db;
mod file;
mod limits;
mod locks;
mod node;
mod reach;
mod readahead;
mod split;
mod walk;

pub use cursor::{Bucket, Cursor, Entry, Lost, Resume, plain_key_in_root, visit_all};
pub use db::{Db, MetaSlot, OpenOptions, PageRef, ResidentBudget};
pub use file::map_large_allocations;
pub(crate) use file::prefetch_value;
pub(crate) use limits::{MAX_BUCKET_DEPTH, MAX_TREE_DEPTH};
pub(crate) use locks::write_locked;
pub use node::Node;
pub use reach::{BucketName, FreelistKind, PageCounts, PageMap, PageUse};
pub use split::Split;
pub(crate) use walk::key_cmp;
pub use walk::{BucketInfo, Problem, Tee, Visitor, show_path, walk};

/// `count` copies of the file `bytes` (pages of `page_size`), each with one byte garbled: a
/// page past the metas picked by a xorshift from `seed`, and in it a byte at `first` plus
/// the xorshift's low bits under `mask`. Deterministic; with the byte's offset.
#[cfg(test)]
pub(crate) fn garbled_copies(
    bytes: &[u8],
    page_size: usize,
    seed: u64,
    count: usize,
    first: usize,
    mask: usize,
) -> impl Iterator<Item = (usize, Vec<u8>)> + '_ {
    let mut x = seed;
    (0..count).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let pages = (bytes.len() / page_size).saturating_sub(2).max(1);
        let at = (2 + (x as usize >> 8) % pages) * page_size + first + (x as usize & mask);
        let mut bad = bytes.to_vec();
        if let Some(b) = bad.get_mut(at) {
            *b ^= (x >> 40) as u8 | 1;
        }
        (at, bad)
    })
}
