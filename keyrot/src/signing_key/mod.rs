//! The JWT signing key secret kind: an Ed25519 key pair whose private half only `api-fn` reads
//! and whose public halves (current and previous) are published as a JWKS for the authorizer.

mod jwks;
mod ports;
mod rotator;
mod secret;

pub use jwks::{key_set_of, parse_key_set as parse_key_set_text, published_key_set, KeySetError};
pub use ports::{PublicKeyStore, SsmPublicKeyStore};
pub use rotator::SigningKeyRotator;
pub use secret::SigningKeySecret;
