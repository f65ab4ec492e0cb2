//! The one place sizes are worded: exact bytes with a binary-unit figure for tables, and a
//! short label for chart axes.

/// Bytes with a binary-unit figure beside them when large: `4096 B (4.0 KiB)`.
pub fn size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    format!("{bytes} B ({})", short(bytes as f64))
}

/// A compact label for axes: `512 B`, `4.0 KiB`, `1.5 GiB`.
pub fn short(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut u) = (bytes, 0);
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(4096), "4096 B (4.0 KiB)");
        assert_eq!(size(3 << 20), "3145728 B (3.0 MiB)");
        assert_eq!(short(1536.0), "1.5 KiB");
        assert_eq!(short(100.0), "100 B");
    }
}
