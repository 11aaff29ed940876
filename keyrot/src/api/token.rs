//! The API's bearer tokens: EdDSA JWTs naming the client, issued by `api-fn`, verified by the
//! authorizer against the published keys.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// Longest accepted token; ours are about 350 bytes. Bounds work done on hostile input.
pub const MAX_TOKEN_BYTES: usize = 2048;
/// Allowed clock difference for `iat`/`nbf` between the issuing and verifying functions.
/// `exp` gets none: a token is refused the second it expires.
pub const CLOCK_SKEW_SECONDS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The client id.
    pub sub: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the signing key is unusable")]
    BadSigningKey,
    #[error("no random source for the token id")]
    NoRandom,
    #[error("signing failed")]
    Signing,
}

/// Issues tokens with one signing key.
pub struct TokenIssuer {
    kid: String,
    key: EncodingKey,
    settings: TokenSettings,
}

pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    pub claims: Claims,
}

impl TokenIssuer {
    pub fn new(kid: &str, pkcs8_der: &[u8], settings: TokenSettings) -> Self {
        Self {
            kid: kid.to_owned(),
            key: EncodingKey::from_ed_der(pkcs8_der),
            settings,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn issue(&self, client_id: &str, now: SystemTime) -> Result<IssuedToken, TokenError> {
        let iat = crate::time::unix_seconds(now);
        let ttl = self.settings.ttl.as_secs();
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: client_id.to_owned(),
            iat,
            nbf: iat,
            exp: iat.saturating_add(ttl),
            jti: crate::random::random_hex(16).ok_or(TokenError::NoRandom)?,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims, &self.key).map_err(|error| {
                match error.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => TokenError::BadSigningKey,
                    _ => TokenError::Signing,
                }
            })?;
        Ok(IssuedToken {
            token,
            expires_in: ttl,
            claims,
        })
    }
}

/// Why a token was refused; used for logs and metrics, never shown to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    TooLarge,
    Malformed,
    WrongAlgorithm,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    WrongIssuer,
    WrongAudience,
}

impl TokenRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "token_too_large",
            Self::Malformed => "token_malformed",
            Self::WrongAlgorithm => "token_wrong_algorithm",
            Self::UnknownKey => "token_unknown_kid",
            Self::BadSignature => "token_bad_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::IssuedInFuture => "token_issued_in_future",
            Self::WrongIssuer => "token_wrong_issuer",
            Self::WrongAudience => "token_wrong_audience",
        }
    }
}

/// Verifies tokens against the published public keys.
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl TokenVerifier {
    /// Keys of the set that are Ed25519 with a kid; others are ignored.
    pub fn new(key_set: &JwkSet, issuer: &str, audience: &str) -> Self {
        let keys = key_set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(okp) = &jwk.algorithm
                else {
                    return None;
                };
                let key = DecodingKey::from_ed_components(&okp.x).ok()?;
                Some((kid, key))
            })
            .collect();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = false; // checked below, with the clock-skew allowance
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
        Self { keys, validation }
    }

    pub fn known_kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, TokenRejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenRejection::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenRejection::WrongAlgorithm);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(TokenRejection::UnknownKey)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|error| {
                use jsonwebtoken::errors::ErrorKind;
                match error.kind() {
                    ErrorKind::ExpiredSignature => TokenRejection::Expired,
                    ErrorKind::InvalidIssuer => TokenRejection::WrongIssuer,
                    ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
                    ErrorKind::InvalidSignature => TokenRejection::BadSignature,
                    ErrorKind::InvalidAlgorithm => TokenRejection::WrongAlgorithm,
                    _ => TokenRejection::Malformed,
                }
            })?;
        let claims = data.claims;
        // The claims are attacker-chosen u64s: compare them, never compute with them.
        let latest_start = crate::time::unix_seconds(now).saturating_add(CLOCK_SKEW_SECONDS);
        let now = crate::time::unix_seconds(now);
        if claims.nbf > latest_start {
            return Err(TokenRejection::NotYetValid);
        }
        if claims.iat > latest_start {
            return Err(TokenRejection::IssuedInFuture);
        }
        if claims.exp <= now {
            return Err(TokenRejection::Expired);
        }
        Ok(claims)
    }
}
