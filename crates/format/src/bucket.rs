//! The bucket header stored as a sub-bucket's value (Go: `type bucket`, bb136 `bucket.go`).

use super::bytes::{put_u64, u64_at};
use super::{DamageKind, FormatError, PageId};

/// Size of the header that starts every bucket value (`bucketHeaderSize`, bucket.go).
pub const BUCKET_HEADER_SIZE: usize = 16;
/// Field offsets of `type bucket` (bucket.go): `root pgid; sequence uint64`.
const ROOT_AT: usize = 0;
const SEQUENCE_AT: usize = 8;
pub use super::element::BUCKET_LEAF_FLAG;
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
    #[inline]
    pub fn parse(value: &[u8]) -> Result<BucketHeader, FormatError> {
        let short = || {
            FormatError::new(
                DamageKind::Bounds,
                0,
                format!(
                    "bucket value is {} bytes, shorter than the 16-byte bucket header",
                    value.len()
                ),
            )
        };
        Ok(BucketHeader {
            root: u64_at(value, ROOT_AT).ok_or_else(short)?,
            sequence: u64_at(value, SEQUENCE_AT).ok_or_else(short)?,
        })
    }

    /// Store the header at `b[0..16]`.
    pub fn write(&self, b: &mut [u8]) {
        put_u64(b, ROOT_AT, self.root);
        put_u64(b, SEQUENCE_AT, self.sequence);
    }

    /// The value of a sub-bucket entry whose tree is at `root` (not inline).
    pub fn to_bytes(&self) -> [u8; BUCKET_HEADER_SIZE] {
        let mut b = [0u8; BUCKET_HEADER_SIZE];
        self.write(&mut b);
        b
    }

    #[inline]
    pub fn is_inline(&self) -> bool {
        self.root == 0
    }
}

/// The inline page image of an inline bucket value (bytes after the header).
#[inline]
pub fn inline_page(value: &[u8]) -> &[u8] {
    value.get(BUCKET_HEADER_SIZE..).unwrap_or(&[])
}

/// An inline bucket's value (`Bucket.write`, bucket.go): a header with root 0 and the
/// bucket's `sequence`, then the leaf page image of `elements` (page id 0).
pub fn inline_bucket_value<'e>(
    sequence: u64,
    elements: impl ExactSizeIterator<Item = super::element::LeafElement<'e>> + Clone,
) -> Vec<u8> {
    let mut v = vec![0u8; BUCKET_HEADER_SIZE + super::element::leaf_node_size(elements.clone())];
    BucketHeader { root: 0, sequence }.write(&mut v);
    super::element::write_leaf_node(&mut v[BUCKET_HEADER_SIZE..], 0, 0, elements);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::{LeafElement, NodeView};

    #[test]
    fn inline_values_read_back() {
        let e = [LeafElement {
            flags: 0,
            key: b"k",
            value: b"v",
        }];
        let v = inline_bucket_value(7, e.iter().copied());
        let h = BucketHeader::parse(&v).unwrap();
        assert_eq!((h.root, h.sequence, h.is_inline()), (0, 7, true));
        let n = NodeView::new(inline_page(&v)).unwrap();
        assert_eq!(n.leaf(0).unwrap(), e[0]);
        let b = BucketHeader {
            root: 9,
            sequence: 2,
        }
        .to_bytes();
        assert_eq!(
            BucketHeader::parse(&b).unwrap(),
            BucketHeader {
                root: 9,
                sequence: 2
            }
        );
    }
}
