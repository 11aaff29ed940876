//! The value of the signing key secret.

use crate::rotation::{parse_secret_json, RotationError};
use crate::Sensitive;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::SystemTime;

pub(crate) const KIND: &str = "jwt-signing-key";

/// `{"Kid", "PrivateKey" (base64 PKCS#8), "PublicKey" (base64url, 32 bytes), "CreatedAt"}`;
/// the onboarding value `{}` holds no key yet.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SigningKeySecret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A usable key: id, PKCS#8 DER of the private key, base64url public key.
pub struct SigningKey {
    pub kid: String,
    pub pkcs8_der: Vec<u8>,
    pub public_key: String,
}

impl SigningKeySecret {
    pub fn parse(
        value: &Sensitive,
        secret: &str,
        stage: &'static str,
    ) -> Result<Self, RotationError> {
        let invalid = |reason: &str| RotationError::invalid_value(secret, stage, KIND, reason);
        let parsed: Self = parse_secret_json(value, secret, stage, KIND)?;
        let present = [&parsed.kid, &parsed.private_key, &parsed.public_key]
            .iter()
            .filter(|field| field.is_some())
            .count();
        if present != 0 && present != 3 {
            return Err(invalid(
                "Kid, PrivateKey and PublicKey must be all present or all absent",
            ));
        }
        if present == 3 && parsed.key().is_none() {
            return Err(invalid(
                "PrivateKey is not a base64 Ed25519 PKCS#8 key matching PublicKey",
            ));
        }
        Ok(parsed)
    }

    /// A fresh key pair.
    pub fn generate(now: SystemTime) -> Option<Self> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).ok()?;
        let pair = Ed25519KeyPair::from_pkcs8(document.as_ref()).ok()?;
        Some(Self {
            kid: Some(format!("k{}", crate::random::random_hex(8)?)),
            private_key: Some(STANDARD.encode(document.as_ref())),
            public_key: Some(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())),
            created_at: Some(crate::time::rfc3339(now)),
        })
    }

    /// The key, if the value holds one and its halves match.
    pub fn key(&self) -> Option<SigningKey> {
        let der = STANDARD.decode(self.private_key.as_deref()?).ok()?;
        let pair = Ed25519KeyPair::from_pkcs8(&der).ok()?;
        let public_key = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        if Some(public_key.as_str()) != self.public_key.as_deref() {
            return None;
        }
        Some(SigningKey {
            kid: self.kid.clone()?,
            pkcs8_der: der,
            public_key,
        })
    }

    pub fn to_sensitive(&self) -> Sensitive {
        Sensitive::new(serde_json::to_string(self).unwrap_or_default())
    }
}

impl fmt::Debug for SigningKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeySecret")
            .field("kid", &self.kid)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("public_key", &self.public_key)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_and_are_unique() {
        let first = SigningKeySecret::generate(SystemTime::now()).expect("key");
        let second = SigningKeySecret::generate(SystemTime::now()).expect("key");
        assert_ne!(first.kid, second.kid);
        let parsed =
            SigningKeySecret::parse(&first.to_sensitive(), "s", "AWSCURRENT").expect("parses");
        assert!(parsed.key().is_some());
        assert!(!format!("{parsed:?}").contains(first.private_key.as_deref().unwrap()));
    }

    #[test]
    fn onboarding_value_holds_no_key_and_mismatched_halves_are_refused() {
        let empty =
            SigningKeySecret::parse(&Sensitive::new("{}"), "s", "AWSCURRENT").expect("empty");
        assert!(empty.key().is_none());
        let mut mixed = SigningKeySecret::generate(SystemTime::now()).expect("key");
        mixed.public_key = SigningKeySecret::generate(SystemTime::now())
            .expect("key")
            .public_key;
        assert!(SigningKeySecret::parse(&mixed.to_sensitive(), "s", "AWSCURRENT").is_err());
        let partial = Sensitive::new(r#"{"Kid":"k1"}"#);
        assert!(SigningKeySecret::parse(&partial, "s", "AWSCURRENT").is_err());
    }
}
