//! Kubernetes quantities as byte counts, and byte counts for people.

const BINARY: [(&str, u32); 6] = [
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];
const DECIMAL: [(&str, i32); 6] = [
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

/// Parses a quantity (`10Gi`, `500G`, `1.5Ti`, `1e9`, `1073741824`) into bytes, rounding down.
/// `None` for anything else (negative, milli, malformed, beyond u64).
pub fn parse_bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let (number, factor): (&str, f64) = if let Some((n, shift)) = BINARY
        .iter()
        .find_map(|(s, sh)| q.strip_suffix(s).map(|n| (n, *sh)))
    {
        (n, 2f64.powi(shift as i32))
    } else if let Some((n, exp)) = DECIMAL
        .iter()
        .find_map(|(s, e)| q.strip_suffix(s).map(|n| (n, *e)))
    {
        (n, 10f64.powi(exp))
    } else if let Some((n, e)) = q.split_once(['e', 'E']) {
        (n, 10f64.powi(e.parse::<i32>().ok()?))
    } else {
        (q, 1.0)
    };
    if number.is_empty() || number.starts_with('-') {
        return None;
    }
    // Integers exactly (f64 loses precision above 2^53).
    if let Ok(n) = number.trim_start_matches('+').parse::<u64>()
        && factor.fract() == 0.0
        && factor <= u64::MAX as f64
    {
        return n.checked_mul(factor as u64);
    }
    let v: f64 = number.parse().ok()?;
    let bytes = v * factor;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `10Gi`, `931.5Gi`, `512`: the largest binary unit the value reaches, exact when it divides,
/// else one decimal (rounded down).
pub fn human_bytes(b: u64) -> String {
    for (suffix, shift) in BINARY.iter().rev() {
        let unit = 1u64 << shift;
        if b >= unit {
            if b.is_multiple_of(unit) {
                return format!("{}{suffix}", b / unit);
            }
            let tenths = (u128::from(b) * 10 / u128::from(unit)) as u64;
            return format!("{}.{}{suffix}", tenths / 10, tenths % 10);
        }
    }
    b.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quantities() {
        assert_eq!(parse_bytes("10Gi"), Some(10 << 30));
        assert_eq!(parse_bytes("500G"), Some(500_000_000_000));
        assert_eq!(parse_bytes("1.5Ti"), Some(3 << 39));
        assert_eq!(parse_bytes("1e9"), Some(1_000_000_000));
        assert_eq!(parse_bytes("1073741824"), Some(1 << 30));
        assert_eq!(parse_bytes("100k"), Some(100_000));
        assert_eq!(parse_bytes("-1Gi"), None);
        assert_eq!(parse_bytes("Gi"), None);
        assert_eq!(parse_bytes("ten"), None);
        assert_eq!(parse_bytes("100m"), None);
        assert_eq!(parse_bytes("20Ei"), None);
    }

    #[test]
    fn humanizes() {
        assert_eq!(human_bytes(10 << 30), "10Gi");
        assert_eq!(human_bytes(1_000_204_886_016), "931.5Gi");
        assert_eq!(human_bytes(64 << 20), "64Mi");
        assert_eq!(human_bytes(512), "512");
        assert_eq!(human_bytes(0), "0");
    }
}
