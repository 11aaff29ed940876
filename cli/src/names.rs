//! Validation of the names operators type.

use crate::error::CliError;

/// IAM user names: 1–64 of letters, digits and `+=,.@_-`.
pub fn user(name: &str) -> Result<&str, CliError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(CliError::Usage(format!(
            "{:?} is not an IAM user name (1 to 64 letters, digits and +=,.@_-)",
            shorten(name)
        )))
    }
}

/// Client ids: 1–64 of letters, digits and `_.-` (they name an SSM parameter, a secret and
/// an API key).
pub fn client(name: &str) -> Result<&str, CliError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(CliError::Usage(format!(
            "{:?} is not a client name (1 to 64 letters, digits and _.-)",
            shorten(name)
        )))
    }
}

/// A comma-separated list of user names, each validated, without duplicates.
pub fn user_list(text: &str) -> Result<Vec<String>, CliError> {
    let mut users: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        user(name)?;
        if !users.iter().any(|u| u == name) {
            users.push(name.to_owned());
        }
    }
    Ok(users)
}

/// A comma-separated list of CIDRs, each checked.
pub fn cidr_list(text: &str) -> Result<Vec<String>, CliError> {
    let cidrs: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    keyrot::api::source_ip::CidrList::parse_all(cidrs.iter().map(String::as_str))
        .map_err(|error| CliError::Usage(error.to_string()))?;
    Ok(cidrs)
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_charsets() {
        assert!(user("ci-bot+1@corp,eu").is_ok());
        assert!(user("").is_err());
        assert!(user(&"a".repeat(65)).is_err());
        assert!(user("al ice").is_err());
        assert!(user("alice/..").is_err());
        assert!(client("ci.prod_1").is_ok());
        assert!(client("ci/prod").is_err());
        assert!(client("ci,prod").is_err());
        assert_eq!(
            user_list("alice, bob,,alice").unwrap(),
            vec!["alice", "bob"]
        );
        assert!(user_list("alice,b b").is_err());
        assert_eq!(cidr_list("10.0.0.0/8, 2001:db8::/64").unwrap().len(), 2);
        assert!(cidr_list("10.0.0.0/33").is_err());
    }
}
