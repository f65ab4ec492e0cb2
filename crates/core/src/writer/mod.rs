//! The bulk page writer: a defragmented copy written sequentially, page ids ascending, each
//! B+tree built bottom-up from entries already in key order (no B+tree inserts, no
//! whole-file buffer). Pages 0 and 1 (the metas) are written last.
//!
//! The same code runs without bytes for `--dry-run`: the size it reports is exact.

mod compact;
mod digest;
mod output;
mod pages;
mod transform;
mod tree;

pub(crate) use compact::inline_max;
pub use compact::{CompactOptions, CompactSummary, FreelistMode, compact_to};
pub use compact::{
    Copying, FileOutput, Progress, ProgressFn, compact_file, compact_to_vec, copy_through,
    plan_copy,
};
pub use digest::{content_digest, expected_digest, verify};
pub use output::{AtomicFile, Perms, refuse_if_held};
pub use pages::{LeafItem, PageSink};
pub use transform::{Presized, Transform};
pub use tree::{ElementLen, TreeBuilder, tree_pages};
