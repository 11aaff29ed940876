//! The published public keys: a standard JWKS of Ed25519 (OKP) keys, newest first.

use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};

#[derive(Debug, thiserror::Error)]
#[error("the published key set is not a valid JWKS: {0}")]
pub struct KeySetError(pub String);

pub fn ed25519_jwk(kid: &str, public_key: &str) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: Some(kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: public_key.to_owned(),
        }),
    }
}

/// A key set holding the one key: what a verifier is built from in tests and benchmarks.
pub fn key_set_of(kid: &str, public_key: &str) -> JwkSet {
    JwkSet {
        keys: vec![ed25519_jwk(kid, public_key)],
    }
}

pub fn parse_key_set(text: Option<&str>) -> Result<JwkSet, KeySetError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(JwkSet { keys: Vec::new() }),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| KeySetError(crate::json_error::describe_json_error(&e))),
    }
}

/// The set to publish: `newest` first, then the newest of the others (at most two keys: the
/// current one and the one before it, whose tokens may still be unexpired).
pub fn published_key_set(newest: Jwk, existing: &JwkSet) -> JwkSet {
    let newest_kid = newest.common.key_id.clone();
    let mut keys = vec![newest];
    if let Some(previous) = existing
        .keys
        .iter()
        .find(|jwk| jwk.common.key_id != newest_kid)
    {
        keys.push(previous.clone());
    }
    JwkSet { keys }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kids(set: &JwkSet) -> Vec<String> {
        set.keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect()
    }

    #[test]
    fn keeps_the_newest_two_and_is_idempotent() {
        let empty = parse_key_set(None).expect("empty");
        let one = published_key_set(ed25519_jwk("k1", "AAAA"), &empty);
        assert_eq!(kids(&one), ["k1"]);
        let two = published_key_set(ed25519_jwk("k2", "BBBB"), &one);
        assert_eq!(kids(&two), ["k2", "k1"]);
        assert_eq!(
            kids(&published_key_set(ed25519_jwk("k2", "BBBB"), &two)),
            ["k2", "k1"]
        );
        let three = published_key_set(ed25519_jwk("k3", "CCCC"), &two);
        assert_eq!(kids(&three), ["k3", "k2"]);
        let round_trip = parse_key_set(Some(&serde_json::to_string(&three).unwrap())).unwrap();
        assert_eq!(kids(&round_trip), ["k3", "k2"]);
        assert!(parse_key_set(Some("{not json")).is_err());
    }
}
