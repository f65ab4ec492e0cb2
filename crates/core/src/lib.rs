//! boltpack: read, analyze, check and compact bbolt files (etcd's `member/snap/db` and
//! snapshots) offline, zero-copy.
//!
//! Rooms, with arrows pointing one way (`tests/layers.rs` fails on one that does not):
//! [`format`] (byte layouts both ways, no I/O) <- [`error`] <- [`reader`] (mmap, metas,
//! pages, cursors, walks) <- [`check`], [`etcd`] <- [`writer`] <- [`analyze`]; above it the
//! presentation crate (crates/report: text, HTML, JSON lines) and the binary (`src/main.rs`,
//! `src/cmd/`). The library returns typed data and renders nothing. See ARCHITECTURE.md.

pub mod analyze;
pub mod check;
pub mod error;
pub mod etcd;
pub mod reader;
pub mod salvage;
pub mod writer;

/// The byte layouts (the `boltpack-format` crate), re-exported so `crate::format::...`
/// names them here as everywhere.
pub use boltpack_format as format;

pub use error::{Error, Result};
pub use reader::{Bucket, Db, OpenOptions};
