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

/// A size as people type it: `2147483648`, `8GiB`, `8G` (binary: K, M, G, T and KiB …
/// TiB are powers of 1024), `8GB` (decimal: KB … TB are powers of 1000), spaces and case
/// ignored, a fraction allowed (`1.5GiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use bytes, or K/M/G/T, KiB/MiB/GiB/TiB, KB/MB/GB/TB)"
            ));
        }
    };
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(factor)
            .ok_or_else(|| format!("{text:?} is too large"));
    }
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 2147483648, 8GiB, 8G)"))?;
    let bytes = v * factor as f64;
    if !(0.0..1.8e19).contains(&bytes) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("2147483648"), Ok(2 << 30));
        assert_eq!(parse_size("8GiB"), Ok(8 << 30));
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("8 gib"), Ok(8 << 30));
        assert_eq!(parse_size("8GB"), Ok(8_000_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("8 parsecs").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(4096), "4096 B (4.0 KiB)");
        assert_eq!(size(3 << 20), "3145728 B (3.0 MiB)");
        assert_eq!(short(1536.0), "1.5 KiB");
        assert_eq!(short(100.0), "100 B");
    }
}
