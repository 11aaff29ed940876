//! What each mode prints: the process-credentials JSON (stdout holds nothing else, or the SDK
//! cannot parse it) and `export` lines for shells.

use crate::cache::CachedKey;
use crate::clock::rfc3339;
use serde_json::json;

/// `{"Version": 1, "AccessKeyId", "SecretAccessKey", "Expiration"}`, the AWS
/// `credential_process` contract. `Expiration` is keyrot's promise, not the refresh time:
/// an SDK re-runs the helper as it nears, and a re-run on a cache hit is one file read.
pub fn credential_process(key: &CachedKey) -> String {
    json!({
        "Version": 1,
        "AccessKeyId": key.access_key_id,
        "SecretAccessKey": key.secret_access_key.expose(),
        "Expiration": rfc3339(key.expiration).unwrap_or_default(),
    })
    .to_string()
}

/// Lines for `eval "$(keyrot-credentials env …)"`. A session token left from another source
/// would be sent with this key and make every request fail, so both its names are unset.
pub fn env_lines(key: &CachedKey) -> String {
    format!(
        "export AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\nunset {}\n",
        shell_quote(&key.access_key_id),
        shell_quote(key.secret_access_key.expose()),
        crate::exec::STALE_TOKENS.join(" "),
    )
}

/// POSIX single quoting: secret access keys may hold `/` and `+`, and nothing is expanded.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn key() -> CachedKey {
        CachedKey {
            access_key_id: "AKIA1".into(),
            secret_access_key: Secret::new("a/b+c'd"),
            expiration: 1_795_860_310,
            refresh_after: 0,
            fetched_at: 0,
        }
    }

    #[test]
    fn credential_process_json_has_exactly_the_contract_fields() {
        let value: serde_json::Value =
            serde_json::from_str(&credential_process(&key())).expect("json");
        assert_eq!(
            value,
            json!({
                "Version": 1,
                "AccessKeyId": "AKIA1",
                "SecretAccessKey": "a/b+c'd",
                "Expiration": "2026-11-28T10:05:10Z",
            })
        );
    }

    #[test]
    fn env_lines_quote_for_the_shell() {
        assert_eq!(
            env_lines(&key()),
            "export AWS_ACCESS_KEY_ID='AKIA1'\nexport AWS_SECRET_ACCESS_KEY='a/b+c'\\''d'\nunset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN\n"
        );
    }
}
