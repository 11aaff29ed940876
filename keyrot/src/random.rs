//! Random identifiers from the system's cryptographic generator.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// `bytes` random bytes as lowercase hex; `None` only if the system generator fails.
pub fn random_hex(bytes: usize) -> Option<String> {
    let mut buffer = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buffer).ok()?;
    Some(buffer.iter().map(|b| format!("{b:02x}")).collect())
}
