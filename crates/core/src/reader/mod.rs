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

pub use cursor::{Bucket, Cursor, Entry, Lost, plain_key_in_root, visit_all};
pub use db::{Db, MetaSlot, OpenOptions, PageRef, ResidentBudget};
pub(crate) use file::prefetch_value;
pub(crate) use limits::{MAX_BUCKET_DEPTH, MAX_TREE_DEPTH};
pub(crate) use locks::write_locked;
pub use node::Node;
pub use reach::{BucketName, FreelistKind, PageCounts, PageMap, PageUse};
pub use split::Split;
pub(crate) use walk::key_cmp;
pub use walk::{BucketInfo, Problem, Visitor, show_path, walk};
