//! boltpack's presentation room: the core library's typed reports rendered for people and
//! scripts (text tables, the HTML report, JSON lines of `dump`, page listings).
//!
//! It sits above the core library (`boltpack`), which knows nothing of it: the engine
//! returns data, this crate decides how it looks. The binary and the fuzz targets use it.
//! Like ripgrep's printer crate, it is a library of its own so tests and fuzzers can render
//! what the binary renders.

pub mod analyze;
pub mod dump;
pub mod etcd;
pub mod html;
pub mod info;
pub mod pages;
pub mod prometheus;
pub mod salvage;
pub mod summary;
pub mod tables;
pub mod units;

pub use boltpack::format::text::{hex, printable, text_or_hex};
