//! boltpack: read, analyze, check and compact bbolt files (etcd's `member/snap/db` and
//! snapshots) offline, zero-copy.
//!
//! Rooms, with arrows pointing one way: [`format`] (byte layouts, no I/O) <- [`reader`]
//! (mmap, metas, pages, cursors, walks) <- [`check`], [`etcd`] <- [`report`] <- the binary.

pub mod analyze;
pub mod check;
pub mod error;
pub mod etcd;
pub mod format;
pub mod reader;
pub mod report;
pub mod writer;

pub use error::{Error, Result};
pub use reader::{Bucket, Db, OpenOptions};
