//! The resource policy the fleet puts on every managed secret: only keyrot's functions (and
//! the break-glass principal) read the key, whatever broad read rights others hold.

use serde_json::json;

/// The tag recording which policy the fleet last put on a secret (its [`stamp`]).
pub const POLICY_TAG: &str = "keyrot:policy";

/// A short, stable fingerprint of a policy's text (64-bit FNV-1a, hex): the fleet compares
/// the stamp a secret's listing carries with the policy the stack asks for, so that a changed
/// reader list (a removed break-glass principal) or an adopted secret's own policy is
/// rewritten at the next run without reading every policy back. It detects change, not
/// tampering: whoever may put a policy and a tag can fake both (docs/security.md, 19.11).
pub fn stamp(policy: &str) -> String {
    let hash = policy
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{hash:016x}")
}

pub fn readers_only(readers: &[String]) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "OnlyKeyrotReads",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:PrincipalArn": readers}},
        }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stamp_is_stable_and_changes_with_the_readers() {
        let one = super::readers_only(&["arn:aws:iam::1:role/api".into()]);
        let two = super::readers_only(&[
            "arn:aws:iam::1:role/api".into(),
            "arn:aws:iam::1:role/break-glass".into(),
        ]);
        assert_eq!(super::stamp(&one), super::stamp(&one.clone()));
        assert_ne!(super::stamp(&one), super::stamp(&two));
        assert_eq!(
            super::stamp(""),
            "cbf29ce484222325",
            "FNV-1a's offset basis"
        );
        assert_eq!(super::stamp(&one).len(), 16);
    }

    #[test]
    fn denies_every_reader_but_the_listed_ones() {
        let policy: serde_json::Value =
            serde_json::from_str(&super::readers_only(&["arn:aws:iam::1:role/api".into()]))
                .unwrap();
        let statement = &policy["Statement"][0];
        assert_eq!(statement["Effect"], "Deny");
        assert_eq!(statement["Action"], "secretsmanager:GetSecretValue");
        assert_eq!(
            statement["Condition"]["StringNotEquals"]["aws:PrincipalArn"][0],
            "arn:aws:iam::1:role/api"
        );
    }
}
