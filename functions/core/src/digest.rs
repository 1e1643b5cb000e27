//! Small deterministic hashes for derived names, idempotency tokens and state digests.
//!
//! FNV-1a is used because it is stable across Rust releases and platforms, unlike `std`'s
//! hasher; nothing here needs to resist an adversary.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// A running FNV-1a 64 hash.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(OFFSET)
    }
}

impl Fnv {
    pub fn new() -> Fnv {
        Fnv::default()
    }

    /// Feeds `bytes` followed by a separator, so that `("ab","c")` and `("a","bc")` differ.
    pub fn write(&mut self, bytes: &[u8]) -> &mut Fnv {
        for b in bytes.iter().chain(std::iter::once(&0xff)) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
        self
    }

    pub fn write_str(&mut self, s: &str) -> &mut Fnv {
        self.write(s.as_bytes())
    }

    pub fn finish(&self) -> u64 {
        self.0
    }

    /// Sixteen lowercase hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The hash of some strings, as hex.
pub fn hex_of<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Fnv::new();
    for p in parts {
        h.write_str(p);
    }
    h.hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_stable_and_separates_parts() {
        assert_ne!(hex_of(["ab", "c"]), hex_of(["a", "bc"]));
        // Computed independently (Python) over b"ngm\xff": a change here would rename every
        // derived group and break the idempotency of in-flight executions.
        assert_eq!(hex_of(["ngm"]), "f70239baaa60ece6");
    }
}
