//! One client's registry entry: the SSM parameter `<path><client-id>` holding
//! `{"users": ["alice"], "cidrs": ["203.0.113.0/24"], "usage_key": "..."}` (no secret).

use super::source_ip::CidrList;
use serde::Deserialize;
use tracing::warn;

#[derive(Debug, Deserialize)]
struct ClientSettings {
    users: Vec<String>,
    #[serde(default)]
    cidrs: Vec<String>,
    #[serde(default)]
    usage_key: Option<String>,
}

/// An entry that parsed; it still needs its API key.
#[derive(Debug)]
pub struct Entry {
    pub id: String,
    pub users: Vec<String>,
    pub cidrs: CidrList,
    pub usage_key: Option<String>,
}

/// The entry of parameter `name` (under `path`), or `None`, logged as `client_skipped`, when
/// it does not parse: one broken entry must not lock every client out.
pub fn parse_entry(path: &str, name: &str, value: &str) -> Option<Entry> {
    let id = name
        .strip_prefix(path)
        .unwrap_or(name)
        .trim_start_matches('/')
        .to_owned();
    let settings = match serde_json::from_str::<ClientSettings>(value) {
        Ok(settings) => settings,
        Err(error) => {
            warn!(decision = "client_skipped", client_id = %id, reason = %crate::json_error::describe_json_error(&error), "client parameter is not valid");
            return None;
        }
    };
    let cidrs = match CidrList::parse_all(settings.cidrs.iter().map(String::as_str)) {
        Ok(cidrs) => cidrs,
        Err(error) => {
            warn!(decision = "client_skipped", client_id = %id, reason = %error, "client parameter is not valid");
            return None;
        }
    };
    Some(Entry {
        id,
        users: settings.users,
        cidrs,
        usage_key: settings.usage_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_name_under_the_path() {
        let entry = parse_entry("/kr/clients/", "/kr/clients/ci", r#"{"users":["alice"]}"#);
        assert_eq!(entry.map(|e| e.id), Some("ci".to_owned()));
    }

    #[test]
    fn bad_json_and_bad_cidrs_are_skipped() {
        assert!(parse_entry("/p/", "/p/a", "{not json").is_none());
        assert!(parse_entry("/p/", "/p/a", r#"{"cidrs":[]}"#).is_none());
        assert!(parse_entry("/p/", "/p/a", r#"{"users":[],"cidrs":["300.0.0.0/8"]}"#).is_none());
    }
}
