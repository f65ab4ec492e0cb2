//! A mapped bbolt file and the ways to walk it: active meta, bounds-checked page access,
//! bucket cursors handing out borrowed keys and values, a whole-tree walk, and the page map.

pub mod cursor;
pub mod db;
pub mod file;
pub mod limits;
pub mod locks;
pub mod node;
pub mod reach;
pub mod walk;

pub use cursor::{Bucket, Cursor, Entry, visit_all};
pub use db::{Db, MetaSlot, OpenOptions, PageRef};
pub use node::Node;
