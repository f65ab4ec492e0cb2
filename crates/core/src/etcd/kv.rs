//! `mvccpb.KeyValue` decoded without copying (etcd@v3.4 `mvcc/mvccpb/kv.proto`): proto3,
//! fields in ascending order, zero fields omitted, int64 as plain varints.

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
pub(crate) fn varint(b: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*at).ok_or("varint cut short")?;
        *at += 1;
        if shift == 63 && byte > 1 {
            return Err("varint overflows 64 bits".into());
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

impl<'a> KeyValue<'a> {
    pub fn decode(b: &'a [u8]) -> Result<KeyValue<'a>, String> {
        Self::decode_to(b, false)
    }

    /// [`decode`](Self::decode) up to the value: what comes after it (`lease`) is not read
    /// and stays 0. A pass over every revision that needs the key and the value's length
    /// then touches nothing past the value's length prefix; the `lease` field sits after
    /// the value bytes, in another cache line and often another page.
    pub fn decode_through_value(b: &'a [u8]) -> Result<KeyValue<'a>, String> {
        Self::decode_to(b, true)
    }

    fn decode_to(b: &'a [u8], stop_at_value: bool) -> Result<KeyValue<'a>, String> {
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
                    let end = at
                        .checked_add(usize::try_from(len).map_err(|_| "length overflows")?)
                        .filter(|&e| e <= b.len())
                        .ok_or_else(|| {
                            format!("field {field} of {len} bytes runs past the value end")
                        })?;
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
                        .ok_or("fixed64 cut short")?
                }
                5 => {
                    at = at
                        .checked_add(4)
                        .filter(|&e| e <= b.len())
                        .ok_or("fixed32 cut short")?
                }
                _ => return Err(format!("unknown wire type {wire} at byte {tag_at}")),
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
        assert!(KeyValue::decode(&b[..12]).is_err());
        assert!(KeyValue::decode(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        let head = KeyValue::decode_through_value(&b).unwrap();
        assert_eq!(head, KeyValue { lease: 0, ..kv });
        // The lease is not read: a cut after the value is not seen.
        assert_eq!(KeyValue::decode_through_value(&b[..14]).unwrap(), head);
    }
}
