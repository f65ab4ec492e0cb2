//! The bucket header stored as a sub-bucket's value (Go: `type bucket`, bb136 `bucket.go`).

use super::bytes::u64_at;
use super::{FormatError, PageId};

/// Size of the header that starts every bucket value (`bucketHeaderSize`, bucket.go).
pub const BUCKET_HEADER_SIZE: usize = 16;
/// Leaf element flag marking a sub-bucket (`bucketLeafFlag`, bucket.go).
pub const BUCKET_LEAF_FLAG: u32 = 0x01;
/// Largest key `Put` accepts (`MaxKeySize`, bucket.go).
pub const MAX_KEY_SIZE: usize = 32768;
/// Largest value `Put` accepts (`MaxValueSize`, bucket.go).
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;

/// `{root, sequence}`. `root == 0` means an inline bucket whose leaf page follows the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct BucketHeader {
    pub root: PageId,
    pub sequence: u64,
}

impl BucketHeader {
    pub fn parse(value: &[u8]) -> Result<BucketHeader, FormatError> {
        let short = || {
            FormatError::new(
                0,
                format!(
                    "bucket value is {} bytes, shorter than the 16-byte bucket header",
                    value.len()
                ),
            )
        };
        Ok(BucketHeader {
            root: u64_at(value, 0).ok_or_else(short)?,
            sequence: u64_at(value, 8).ok_or_else(short)?,
        })
    }

    pub fn is_inline(&self) -> bool {
        self.root == 0
    }
}

/// The inline page image of an inline bucket value (bytes after the header).
pub fn inline_page(value: &[u8]) -> &[u8] {
    value.get(BUCKET_HEADER_SIZE..).unwrap_or(&[])
}
