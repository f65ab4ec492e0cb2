//! Rendering for people and scripts: hex, printable text, tables, JSON.

pub mod analyze;
pub mod dump;
pub mod etcd;
pub mod html;
pub mod info;
pub mod pages;

pub use crate::format::text::{hex, printable, text_or_hex};
