//! Revision keys of the `key` bucket (etcd@v3.4 `mvcc/revision.go`): 8-byte big-endian main,
//! `_`, 8-byte big-endian sub; a tombstone appends `t`.

/// `revBytesLen` (revision.go).
pub const REV_BYTES_LEN: usize = 17;
/// `markedRevBytesLen` (kvstore.go): a revision key with the tombstone mark.
pub const MARKED_REV_BYTES_LEN: usize = 18;
/// The tombstone mark (`markTombstone`, kvstore.go).
pub const TOMBSTONE_MARK: u8 = b't';
const SEPARATOR: u8 = b'_';

/// Why a `key` bucket key is not a revision key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RevisionKeyError {
    #[error("revision key of {0} bytes (want 17, or 18 ending in 't')")]
    Length(usize),
    #[error("revision key separator {0:#04x} is not '_'")]
    Separator(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct RevisionKey {
    pub main: i64,
    pub sub: i64,
    pub tombstone: bool,
}

impl RevisionKey {
    pub fn parse(b: &[u8]) -> Result<RevisionKey, RevisionKeyError> {
        let tombstone = match b.len() {
            REV_BYTES_LEN => false,
            MARKED_REV_BYTES_LEN if b[17] == TOMBSTONE_MARK => true,
            n => return Err(RevisionKeyError::Length(n)),
        };
        if b[8] != SEPARATOR {
            return Err(RevisionKeyError::Separator(b[8]));
        }
        let main = i64::from_be_bytes(b[0..8].try_into().expect("8 bytes"));
        let sub = i64::from_be_bytes(b[9..17].try_into().expect("8 bytes"));
        Ok(RevisionKey {
            main,
            sub,
            tombstone,
        })
    }

    /// A sort key in the order of the keys' bytes (big-endian `main`, `sub`, then the
    /// tombstone mark), which is the `key` bucket's order: negative revisions sort last.
    pub fn byte_order(&self) -> (u64, u64, bool) {
        (self.main as u64, self.sub as u64, self.tombstone)
    }

    /// The 17-byte form (no tombstone mark), as `meta/finishedCompactRev` stores it.
    pub fn to_bytes(&self) -> [u8; REV_BYTES_LEN] {
        let mut b = [0u8; REV_BYTES_LEN];
        b[0..8].copy_from_slice(&self.main.to_be_bytes());
        b[8] = SEPARATOR;
        b[9..17].copy_from_slice(&self.sub.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_the_order_of_the_bytes() {
        let rk = |main, sub, tombstone| RevisionKey {
            main,
            sub,
            tombstone,
        };
        let bytes = |r: &RevisionKey| {
            let mut b = r.to_bytes().to_vec();
            if r.tombstone {
                b.push(TOMBSTONE_MARK);
            }
            b
        };
        let revs = [
            rk(1, 0, false),
            rk(1, 0, true),
            rk(1, 1, false),
            rk(-1, 0, false),
            rk(i64::MAX, 2, true),
        ];
        for a in &revs {
            for b in &revs {
                assert_eq!(
                    a.byte_order().cmp(&b.byte_order()),
                    bytes(a).cmp(&bytes(b)),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn round_trip_and_tombstone() {
        let r = RevisionKey {
            main: 7,
            sub: 2,
            tombstone: false,
        };
        let b = r.to_bytes();
        assert_eq!(RevisionKey::parse(&b), Ok(r));
        let mut t = b.to_vec();
        t.push(b't');
        assert!(RevisionKey::parse(&t).unwrap().tombstone);
        t[17] = b'x';
        assert_eq!(
            RevisionKey::parse(&t),
            Err(RevisionKeyError::Length(MARKED_REV_BYTES_LEN))
        );
        assert_eq!(
            RevisionKey::parse(&b[..16]),
            Err(RevisionKeyError::Length(16))
        );
    }
}
