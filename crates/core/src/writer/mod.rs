//! The bulk page writer: a defragmented copy written sequentially, page ids ascending, each
//! B+tree built bottom-up from entries already in key order (no B+tree inserts, no
//! whole-file buffer). Pages 0 and 1 (the metas) are written last.
//!
//! The same code runs without bytes for `--dry-run`: the size it reports is exact.

pub mod compact;
pub mod digest;
pub mod output;
pub mod pages;
pub mod transform;
pub mod tree;

pub use compact::{CompactOptions, CompactSummary, FreelistMode, compact_to};
