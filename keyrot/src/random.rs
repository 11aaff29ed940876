//! Random identifiers (token ids, key ids) from the kernel's CSPRNG.
//!
//! Not aws-lc's generator: its first use seeds a DRBG, which cost tens of milliseconds inside
//! the first token request of a cold api-fn (before/after in BENCHMARKS.md). The kernel's
//! generator is ready at once and as unpredictable.

/// Fills `buffer` with random bytes; `None` only if the system generator fails.
pub fn fill(buffer: &mut [u8]) -> Option<()> {
    getrandom::fill(buffer).ok()
}

/// `bytes` random bytes as lowercase hex; `None` only if the system generator fails.
pub fn random_hex(bytes: usize) -> Option<String> {
    let mut buffer = vec![0u8; bytes];
    fill(&mut buffer)?;
    Some(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_of_the_requested_length_and_never_repeated() {
        let first = random_hex(16).expect("random");
        assert_eq!(first.len(), 32);
        assert!(first
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(first, random_hex(16).expect("random"));
    }
}
