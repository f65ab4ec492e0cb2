//! Rendering for people and scripts: hex, printable text, tables, JSON.

pub mod analyze;
pub mod dump;
pub mod etcd;
pub mod html;
pub mod info;
pub mod pages;

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[usize::from(x >> 4)] as char);
        s.push(D[usize::from(x & 15)] as char);
    }
    s
}

/// Text when the bytes are printable UTF-8 (no control characters), else `None`.
pub fn printable(b: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(b).ok()?;
    (!s.chars().any(char::is_control)).then_some(s)
}

/// Printable text as is, otherwise `0x` + hex.
pub fn text_or_hex(b: &[u8]) -> String {
    match printable(b) {
        Some(s) => s.to_string(),
        None => format!("0x{}", hex(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(text_or_hex(b"key"), "key");
        assert_eq!(text_or_hex(b"a\nb"), "0x610a62");
        assert_eq!(text_or_hex(&[0xff]), "0xff");
    }
}
