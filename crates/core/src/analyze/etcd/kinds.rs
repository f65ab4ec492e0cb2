//! What kind of Kubernetes object a value holds, from the value alone (no schema).
//!
//! kube-apiserver stores an object as protobuf behind the magic `k8s\0`: a
//! `runtime.Unknown` whose field 1 is the `TypeMeta` {apiVersion = 1, kind = 2}, field 2
//! the object (k8s.io/apimachinery `pkg/runtime/generated.proto`,
//! `serializer/protobuf/protobuf.go`); or as JSON with top-level `apiVersion` and `kind`
//! (custom resources). With encryption at rest the value starts with
//! `k8s:enc:<provider>:v1:<key name>:`. Anything else is not a Kubernetes object.

use serde::Serialize;

use crate::etcd::varint;

/// How a value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Protobuf,
    Json,
    Encrypted,
    /// Not a Kubernetes object (or one that does not parse).
    Other,
}

impl Encoding {
    pub fn label(self) -> &'static str {
        match self {
            Encoding::Protobuf => "protobuf",
            Encoding::Json => "json",
            Encoding::Encrypted => "encrypted",
            Encoding::Other => "other",
        }
    }
}

/// An object's type, as far as the value says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKind {
    pub encoding: Encoding,
    /// `v1`, `apps/v1`, ...; for an encrypted value, the provider (`aescbc`, `kms`, ...).
    pub api_version: String,
    pub kind: String,
}

impl ObjectKind {
    /// `apps/v1 Deployment`, `(encrypted: aescbc)`, `(not a Kubernetes object)`.
    pub fn label(&self) -> String {
        match self.encoding {
            Encoding::Protobuf | Encoding::Json => format!("{} {}", self.api_version, self.kind),
            Encoding::Encrypted => format!("(encrypted: {})", self.api_version),
            Encoding::Other => "(not a Kubernetes object)".to_string(),
        }
    }
}

/// The protobuf envelope's magic.
pub const PROTOBUF_MAGIC: &[u8] = b"k8s\0";
/// The prefix of a value encrypted at rest.
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// The kind of the object in `value`.
pub fn object_kind(value: &[u8]) -> ObjectKind {
    let (encoding, api_version, kind) = kind_parts(value);
    ObjectKind {
        encoding,
        api_version: String::from_utf8_lossy(api_version).into_owned(),
        kind: String::from_utf8_lossy(kind).into_owned(),
    }
}

/// [`object_kind`] borrowed from the value, with nothing allocated (a pass over every
/// revision asks this of each put): the encoding, the apiVersion (for an encrypted value
/// the provider) and the kind.
pub fn kind_parts(value: &[u8]) -> (Encoding, &[u8], &[u8]) {
    const OTHER: (Encoding, &[u8], &[u8]) = (Encoding::Other, b"", b"");
    if let Some(rest) = value.strip_prefix(PROTOBUF_MAGIC) {
        return protobuf_kind(rest).unwrap_or(OTHER);
    }
    if let Some(rest) = value.strip_prefix(ENCRYPTED_PREFIX) {
        let provider = rest.split(|&b| b == b':').next().unwrap_or_default();
        return (Encoding::Encrypted, provider, b"");
    }
    if value.first() == Some(&b'{') {
        return json_kind(value).unwrap_or(OTHER);
    }
    OTHER
}

/// Field `want` (length-delimited) of the protobuf message `b`.
fn field(b: &[u8], want: u64) -> Option<&[u8]> {
    let mut at = 0;
    while at < b.len() {
        let tag = varint(b, &mut at).ok()?;
        match tag & 7 {
            0 => {
                varint(b, &mut at).ok()?;
            }
            2 => {
                let len = usize::try_from(varint(b, &mut at).ok()?).ok()?;
                let end = at.checked_add(len).filter(|&e| e <= b.len())?;
                if tag >> 3 == want {
                    return Some(&b[at..end]);
                }
                at = end;
            }
            1 => at = at.checked_add(8)?,
            5 => at = at.checked_add(4)?,
            _ => return None,
        }
    }
    None
}

fn protobuf_kind(unknown: &[u8]) -> Option<(Encoding, &[u8], &[u8])> {
    let type_meta = field(unknown, 1)?;
    let text = |n| {
        let b = field(type_meta, n).unwrap_or_default();
        std::str::from_utf8(b).ok().map(|_| b)
    };
    Some((Encoding::Protobuf, text(1)?, text(2)?))
}

fn json_kind(value: &[u8]) -> Option<(Encoding, &[u8], &[u8])> {
    #[derive(serde::Deserialize)]
    struct TypeMeta<'a> {
        #[serde(rename = "apiVersion", borrow)]
        api_version: &'a str,
        #[serde(borrow)]
        kind: &'a str,
    }
    let t: TypeMeta<'_> = serde_json::from_slice(value).ok()?;
    Some((Encoding::Json, t.api_version.as_bytes(), t.kind.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(api_version: &str, kind: &str) -> Vec<u8> {
        let mut tm = vec![0x0a, api_version.len() as u8];
        tm.extend_from_slice(api_version.as_bytes());
        tm.extend_from_slice(&[0x12, kind.len() as u8]);
        tm.extend_from_slice(kind.as_bytes());
        let mut v = PROTOBUF_MAGIC.to_vec();
        v.extend_from_slice(&[0x0a, tm.len() as u8]);
        v.extend_from_slice(&tm);
        v.extend_from_slice(&[0x12, 0x02, 0x08, 0x01]); // raw
        v
    }

    #[test]
    fn kinds() {
        let k = object_kind(&envelope("apps/v1", "Deployment"));
        assert_eq!(k.label(), "apps/v1 Deployment");
        assert_eq!(k.encoding, Encoding::Protobuf);
        let j =
            object_kind(br#"{"apiVersion":"crd.projectcalico.org/v1","kind":"IPPool","spec":{}}"#);
        assert_eq!(j.label(), "crd.projectcalico.org/v1 IPPool");
        assert_eq!(j.encoding, Encoding::Json);
        let e = object_kind(b"k8s:enc:aescbc:v1:key1:\x00\x01\x02");
        assert_eq!(e.label(), "(encrypted: aescbc)");
        for other in [&b"plain"[..], b"", b"k8s\0\x0a\xff", b"{not json", b"k8s\0"] {
            assert_eq!(object_kind(other).encoding, Encoding::Other, "{other:?}");
        }
    }
}
