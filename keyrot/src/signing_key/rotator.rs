//! Rotates the JWT signing key: a new Ed25519 pair per rotation; its public key is published
//! at setSecret, before api-fn can sign with it, next to the current one, so tokens of both
//! verify until the next rotation drops the older.

use super::jwks::{ed25519_jwk, parse_key_set, published_key_set};
use super::ports::PublicKeyStore;
use super::secret::{SigningKeySecret, KIND};
use crate::api::token::{TokenIssuer, TokenSettings, TokenVerifier};
use crate::rotation::{RotationError, Rotator, SecretRef, Stage};
use crate::{AwsCallError, Sensitive};
use std::time::{Duration, SystemTime};
use tracing::info;

pub struct SigningKeyRotator<P> {
    public_keys: P,
}

impl<P: PublicKeyStore> SigningKeyRotator<P> {
    pub fn new(public_keys: P) -> Self {
        Self { public_keys }
    }

    /// Publishes `key` as the newest key, keeping the newest other one.
    async fn publish(
        &self,
        secret: &SecretRef,
        key: &SigningKeySecret,
    ) -> Result<(), RotationError> {
        let (Some(kid), Some(public_key)) = (&key.kid, &key.public_key) else {
            return Ok(());
        };
        let existing = self.public_keys.read().await?;
        let existing = parse_key_set(existing.as_deref())
            .map_err(|e| invalid(secret, "published public keys", &e.to_string()))?;
        let set = published_key_set(ed25519_jwk(kid, public_key), &existing);
        let text = serde_json::to_string(&set).map_err(|e| AwsCallError {
            operation: "PutParameter",
            code: None,
            message: format!("could not serialise the key set: {e}"),
        })?;
        self.public_keys.write(&text).await?;
        let kids: Vec<String> = set
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect();
        info!(decision = "published_public_keys", kids = ?kids);
        Ok(())
    }
}

fn invalid(secret: &SecretRef, stage: &'static str, reason: &str) -> RotationError {
    RotationError::invalid_value(&secret.name, stage, KIND, reason)
}

impl<P: PublicKeyStore> Rotator for SigningKeyRotator<P> {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn create(
        &self,
        secret: &SecretRef,
        _token: &str,
        current: &Sensitive,
        _previous: Option<&Sensitive>,
    ) -> Result<Sensitive, RotationError> {
        SigningKeySecret::parse(current, &secret.name, Stage::Current.label())?;
        let new_key = SigningKeySecret::generate(SystemTime::now()).ok_or_else(|| {
            invalid(
                secret,
                Stage::Pending.label(),
                "could not generate an Ed25519 key",
            )
        })?;
        info!(
            decision = "generated_signing_key",
            kid = new_key.kid.as_deref().unwrap_or("")
        );
        Ok(new_key.to_sensitive())
    }

    async fn set(
        &self,
        secret: &SecretRef,
        current: &Sensitive,
        pending: &Sensitive,
    ) -> Result<(), RotationError> {
        let current = SigningKeySecret::parse(current, &secret.name, Stage::Current.label())?;
        let pending = SigningKeySecret::parse(pending, &secret.name, Stage::Pending.label())?;
        if pending.key().is_none() {
            return Err(invalid(secret, Stage::Pending.label(), "it holds no key"));
        }
        // Re-publishing the current key first makes it the "other" key kept next to the new
        // one, even if the published set was edited or lost.
        self.publish(secret, &current).await?;
        self.publish(secret, &pending).await
    }

    async fn test(&self, secret: &SecretRef, value: &Sensitive) -> Result<(), RotationError> {
        let value = SigningKeySecret::parse(value, &secret.name, Stage::Pending.label())?;
        let Some(key) = value.key() else {
            return Ok(());
        };
        // Sign and verify a probe token, exactly as api-fn and the authorizer will.
        let settings = TokenSettings {
            issuer: "keyrot-rotation-test".into(),
            audience: "keyrot-rotation-test".into(),
            ttl: Duration::from_secs(60),
        };
        let now = SystemTime::now();
        let probe = TokenIssuer::new(&key.kid, &key.pkcs8_der, settings.clone())
            .issue("rotation-test", now)
            .map_err(|e| invalid(secret, Stage::Pending.label(), &e.to_string()))?;
        let set = jsonwebtoken::jwk::JwkSet {
            keys: vec![ed25519_jwk(&key.kid, &key.public_key)],
        };
        TokenVerifier::new(&set, &settings.issuer, &settings.audience)
            .verify(&probe.token, now)
            .map_err(|rejection| invalid(secret, Stage::Pending.label(), rejection.as_str()))?;
        Ok(())
    }

    async fn finished(
        &self,
        secret: &SecretRef,
        _token: &str,
        promoted: &Sensitive,
        _superseded: Option<&Sensitive>,
    ) -> Result<(), RotationError> {
        let promoted = SigningKeySecret::parse(promoted, &secret.name, Stage::Current.label())?;
        self.publish(secret, &promoted).await
    }
}
