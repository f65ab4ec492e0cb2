//! `mvccpb.KeyValue` decoded without copying (etcd@v3.4 `mvcc/mvccpb/kv.proto`): proto3,
//! fields in ascending order, zero fields omitted, int64 as plain varints.

/// The tag of field 1 (`key`, wire type 2: length-delimited).
const KEY_TAG: u8 = (1 << 3) | 2;

/// Borrowed view of a KeyValue; `key` and `value` point into the map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyValue<'a> {
    pub key: &'a [u8],
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub value: &'a [u8],
    pub lease: i64,
}

/// A protobuf varint at `b[*at..]`, advancing `at`; longer than 10 bytes or past 64 bits
/// is an error.
#[inline]
pub(crate) fn varint(b: &[u8], at: &mut usize) -> Result<u64, KvError> {
    // One byte: every tag and most lengths and revisions' low fields of a KeyValue.
    if let Some(&byte) = b.get(*at)
        && byte < 0x80
    {
        *at += 1;
        return Ok(u64::from(byte));
    }
    varint_long(b, at)
}

fn varint_long(b: &[u8], at: &mut usize) -> Result<u64, KvError> {
    let mut v: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*at).ok_or(KvError::VarintCutShort)?;
        *at += 1;
        if shift == 63 && byte > 1 {
            return Err(KvError::VarintOverflow);
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(KvError::VarintTooLong)
}

/// Where a length-delimited `field` of `len` bytes starting at `b[at]` ends, if inside `b`.
fn field_end(b: &[u8], at: usize, len: u64, field: u64) -> Result<usize, KvError> {
    at.checked_add(usize::try_from(len).map_err(|_| KvError::LengthOverflow)?)
        .filter(|&e| e <= b.len())
        .ok_or(KvError::FieldPastEnd { field, len })
}

/// Why an `mvccpb.KeyValue` (or a varint in it) does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("varint cut short")]
    VarintCutShort,
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    #[error("length overflows")]
    LengthOverflow,
    #[error("field {field} of {len} bytes runs past the value end")]
    FieldPastEnd { field: u64, len: u64 },
    #[error("fixed64 cut short")]
    Fixed64CutShort,
    #[error("fixed32 cut short")]
    Fixed32CutShort,
    #[error("unknown wire type {wire} at byte {at}")]
    UnknownWireType { wire: u64, at: usize },
}

impl<'a> KeyValue<'a> {
    pub fn decode(b: &'a [u8]) -> Result<KeyValue<'a>, KvError> {
        Self::decode_to(b, false)
    }

    /// [`decode`](Self::decode) up to the value: what comes after it (`lease`) is not read
    /// and stays 0. A pass over every revision that needs the key and the value's length
    /// then touches nothing past the value's length prefix; the `lease` field sits after
    /// the value bytes, in another cache line and often another page.
    pub fn decode_through_value(b: &'a [u8]) -> Result<KeyValue<'a>, KvError> {
        Self::decode_to(b, true)
    }

    /// The key only, the other fields left 0: for a pass that needs only the user key
    /// (HashKV hashes the value's bytes as they are). etcd writes the key first (field 1,
    /// `0x0a`); any other first field falls back to [`decode`](Self::decode). What comes
    /// after the key is not read, so a value etcd never writes, with the key field twice,
    /// is taken by its first (etcd's decoder, and [`decode`](Self::decode), take the last),
    /// and damage after the key goes unseen here (`get`, `analyze` and `compact` decode
    /// further).
    pub fn decode_key_only(b: &'a [u8]) -> Result<KeyValue<'a>, KvError> {
        if b.first() != Some(&KEY_TAG) {
            return Self::decode(b);
        }
        let mut at = 1;
        let len = varint(b, &mut at)?;
        let end = field_end(b, at, len, 1)?;
        Ok(KeyValue {
            key: &b[at..end],
            ..KeyValue::default()
        })
    }

    fn decode_to(b: &'a [u8], stop_at_value: bool) -> Result<KeyValue<'a>, KvError> {
        let mut kv = KeyValue::default();
        let mut at = 0;
        while at < b.len() {
            let tag_at = at;
            let tag = varint(b, &mut at)?;
            let (field, wire) = (tag >> 3, tag & 7);
            match wire {
                0 => {
                    let v = varint(b, &mut at)? as i64;
                    match field {
                        2 => kv.create_revision = v,
                        3 => kv.mod_revision = v,
                        4 => kv.version = v,
                        6 => kv.lease = v,
                        _ => {}
                    }
                }
                2 => {
                    let len = varint(b, &mut at)?;
                    let end = field_end(b, at, len, field)?;
                    match field {
                        1 => kv.key = &b[at..end],
                        5 => {
                            kv.value = &b[at..end];
                            if stop_at_value {
                                return Ok(kv);
                            }
                        }
                        _ => {}
                    }
                    at = end;
                }
                1 => {
                    at = at
                        .checked_add(8)
                        .filter(|&e| e <= b.len())
                        .ok_or(KvError::Fixed64CutShort)?
                }
                5 => {
                    at = at
                        .checked_add(4)
                        .filter(|&e| e <= b.len())
                        .ok_or(KvError::Fixed32CutShort)?
                }
                _ => return Err(KvError::UnknownWireType { wire, at: tag_at }),
            }
        }
        Ok(kv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_etcd_value() {
        // Captured from etcd 3.4.23: key "lk" value "lv", rev 7, lease.
        let b = [
            0x0a, 0x02, b'l', b'k', 0x10, 0x07, 0x18, 0x07, 0x20, 0x01, 0x2a, 0x02, b'l', b'v',
            0x30, 0x8a, 0xce, 0x88, 0xe0, 0x8c, 0xc4, 0xe8, 0x86, 0x39,
        ];
        let kv = KeyValue::decode(&b).unwrap();
        assert_eq!((kv.key, kv.value), (&b"lk"[..], &b"lv"[..]));
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (7, 7, 1));
        assert!(kv.lease > 0);
        assert_eq!(
            KeyValue::decode(&b[..12]),
            Err(KvError::FieldPastEnd { field: 5, len: 2 })
        );
        assert_eq!(
            KeyValue::decode(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(KvError::FieldPastEnd {
                field: 1,
                len: 0xffff_ffff
            })
        );
        let head = KeyValue::decode_through_value(&b).unwrap();
        assert_eq!(head, KeyValue { lease: 0, ..kv });
        // The lease is not read: a cut after the value is not seen.
        assert_eq!(KeyValue::decode_through_value(&b[..14]).unwrap(), head);
        let key = KeyValue::decode_key_only(&b[..5]).unwrap();
        assert_eq!(
            key,
            KeyValue {
                key: b"lk",
                ..KeyValue::default()
            }
        );
        assert_eq!(
            KeyValue::decode_key_only(&b[..3]),
            Err(KvError::FieldPastEnd { field: 1, len: 2 })
        );
        // Not key-first: decoded in full.
        assert_eq!(
            KeyValue::decode_key_only(&b[4..]).map(|kv| kv.version),
            Ok(1)
        );
    }
}
