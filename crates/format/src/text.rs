//! How bytes from a file are shown in messages and reports: hex, printable text, and
//! both cut to a length so that a hostile file cannot make a message huge.

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

/// Hex of at most `max` bytes of `b`, then `…(N bytes)` when it was cut.
pub fn hex_cut(b: &[u8], max: usize) -> String {
    let mut s = hex(&b[..b.len().min(max)]);
    if b.len() > max {
        s.push_str(&format!("…({} bytes)", b.len()));
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
        assert_eq!(hex_cut(&[1, 2, 3], 2), "0102…(3 bytes)");
        assert_eq!(hex_cut(&[1, 2], 2), "0102");
        assert_eq!(text_or_hex(b"key"), "key");
        assert_eq!(text_or_hex(b"a\nb"), "0x610a62");
        assert_eq!(text_or_hex(&[0xff]), "0xff");
    }
}
