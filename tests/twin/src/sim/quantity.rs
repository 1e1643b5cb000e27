//! Resource quantities (`500m`, `2`, `512Mi`, `1G`) as plain integers: CPU in millicores,
//! everything else in bytes (or units), as the scheduler compares them.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CPU in millicores. `"1"` → 1000, `"250m"` → 250, `"0.5"` → 500. Unparseable → 0.
pub fn cpu_millis(q: &str) -> i64 {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<f64>().map(|v| v.ceil() as i64).unwrap_or(0);
    }
    q.parse::<f64>()
        .map(|v| (v * 1000.0).ceil() as i64)
        .unwrap_or(0)
}

/// A quantity in base units (bytes for memory): binary (`Ki`, `Mi`, `Gi`, `Ti`) and decimal
/// (`k`, `M`, `G`, `T`, `m`) suffixes, and plain or exponent numbers. Unparseable → 0.
pub fn amount(q: &str) -> i64 {
    let q = q.trim();
    const SUFFIXES: [(&str, f64); 10] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(n) = q.strip_suffix(suffix) {
            return n
                .parse::<f64>()
                .map(|v| (v * factor).ceil() as i64)
                .unwrap_or(0);
        }
    }
    q.parse::<f64>().map(|v| v.ceil() as i64).unwrap_or(0)
}

/// CPU millicores of an optional quantity.
pub fn cpu_of(q: Option<&Quantity>) -> i64 {
    q.map(|q| cpu_millis(&q.0)).unwrap_or(0)
}

/// Base units of an optional quantity.
pub fn amount_of(q: Option<&Quantity>) -> i64 {
    q.map(|q| amount(&q.0)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_parse_to_millicores_as_the_api_server_canonicalises_them() {
        let cases = [
            ("1", 1000),
            ("250m", 250),
            ("0.5", 500),
            ("16", 16000),
            ("bad", 0),
        ];
        for (q, want) in cases {
            assert_eq!(cpu_millis(q), want, "{q}");
        }
    }

    #[test]
    fn memory_quantities_honour_binary_and_decimal_suffixes() {
        let cases = [
            ("512Mi", 536_870_912),
            ("1Gi", 1_073_741_824),
            ("1G", 1_000_000_000),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("64Ki", 65_536),
        ];
        for (q, want) in cases {
            assert_eq!(amount(q), want, "{q}");
        }
    }
}
