//! The command layer: policy around the library for each subcommand that has any.

pub mod compact;
