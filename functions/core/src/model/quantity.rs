//! Kubernetes resource quantities (`250m`, `1.5`, `512Mi`, `2G`) to integers.

use thiserror::Error;

/// A quantity string ngm cannot read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a Kubernetes quantity: {0:?}")]
pub struct QuantityError(pub String);

fn split_suffix(s: &str) -> (&str, &str) {
    let idx = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    s.split_at(idx)
}

/// Scales a decimal number by `num/den`, rounding up as the API server does for requests.
fn scaled(number: &str, num: f64, original: &str) -> Result<i64, QuantityError> {
    let n: f64 = number
        .parse()
        .map_err(|_| QuantityError(original.to_string()))?;
    let v = (n * num).ceil();
    if !v.is_finite() || v > i64::MAX as f64 || v < i64::MIN as f64 {
        return Err(QuantityError(original.to_string()));
    }
    Ok(v as i64)
}

/// CPU in millicores: `250m` → 250, `2` → 2000, `0.5` → 500.
pub fn parse_cpu_millis(q: &str) -> Result<i64, QuantityError> {
    let (number, suffix) = split_suffix(q.trim());
    let factor = match suffix {
        "m" => 1.0,
        "" => 1000.0,
        "k" => 1_000_000.0,
        "n" => 1e-6,
        "u" => 1e-3,
        _ => return Err(QuantityError(q.to_string())),
    };
    scaled(number, factor, q)
}

/// Memory in bytes: `512Mi`, `1G`, `1e3`, `128974848`.
pub fn parse_memory_bytes(q: &str) -> Result<i64, QuantityError> {
    let q_trim = q.trim();
    if let Some((mantissa, exp)) = q_trim.split_once(['e', 'E'])
        && let Ok(e) = exp.parse::<i32>()
    {
        return scaled(mantissa, 10f64.powi(e), q);
    }
    let (number, suffix) = split_suffix(q_trim);
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "Pi" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(QuantityError(q.to_string())),
    };
    scaled(number, factor, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_convert_to_millicores() {
        for (q, want) in [("250m", 250), ("2", 2000), ("0.5", 500), ("1.25", 1250)] {
            assert_eq!(parse_cpu_millis(q), Ok(want), "{q}");
        }
        assert!(parse_cpu_millis("2x").is_err());
        assert!(parse_cpu_millis("abc").is_err());
    }

    #[test]
    fn memory_quantities_convert_to_bytes() {
        for (q, want) in [
            ("512Mi", 512 * 1024 * 1024),
            ("1G", 1_000_000_000),
            ("1e3", 1000),
            ("128974848", 128_974_848),
            ("1.5Gi", 1_610_612_736),
        ] {
            assert_eq!(parse_memory_bytes(q), Ok(want), "{q}");
        }
        assert!(parse_memory_bytes("12Q").is_err());
    }
}
