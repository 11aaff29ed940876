//! The client registry: who may call the API, with which API key, for which IAM users, from
//! where, and under which usage plan key.

use super::source_ip::CidrList;
use crate::Sensitive;
use std::time::SystemTime;
use subtle::ConstantTimeEq;

/// The API key a client had before `keyrot clients rotate-key`, accepted until `valid_until`
/// so the client can switch to the new key without an outage.
#[derive(Debug, Clone)]
pub struct PreviousApiKey {
    pub api_key: Sensitive,
    pub valid_until: SystemTime,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub api_key: Sensitive,
    /// The key before the last rotation, during its grace period.
    pub previous_api_key: Option<PreviousApiKey>,
    /// IAM users whose keys this client may read.
    pub users: Vec<String>,
    /// The client's own CIDRs; empty means the global allowlist alone.
    pub cidrs: CidrList,
    /// The API Gateway API key value of the client's usage plan.
    pub usage_key: Option<String>,
}

impl Client {
    pub fn may_read(&self, user: &str) -> bool {
        self.users.iter().any(|allowed| allowed == user)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClientRegistry {
    clients: Vec<Client>,
}

impl ClientRegistry {
    pub fn new(clients: Vec<Client>) -> Self {
        Self { clients }
    }

    /// The client whose API key is `presented`: its current key, or its previous key while
    /// that is still within its grace at `now`. Every client's keys (current and previous,
    /// expired or not) are compared, each in constant time, so the answer's timing tells
    /// nothing about which key came close.
    pub fn find_by_api_key(&self, presented: &str, now: SystemTime) -> Option<&Client> {
        let presented = presented.as_bytes();
        let mut found = None;
        for client in &self.clients {
            let key = client.api_key.expose().as_bytes();
            let current = key.ct_eq(presented) & subtle::Choice::from(u8::from(!key.is_empty()));
            let previous = match &client.previous_api_key {
                Some(previous) => {
                    let old = previous.api_key.expose().as_bytes();
                    let matches =
                        old.ct_eq(presented) & subtle::Choice::from(u8::from(!old.is_empty()));
                    matches & subtle::Choice::from(u8::from(now < previous.valid_until))
                }
                None => subtle::Choice::from(0),
            };
            if bool::from(current | previous) {
                found = Some(client);
            }
        }
        found
    }

    pub fn find_by_id(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|client| client.id == id)
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str, key: &str) -> Client {
        Client {
            id: id.into(),
            api_key: Sensitive::new(key),
            previous_api_key: None,
            users: vec!["alice".into()],
            cidrs: CidrList::default(),
            usage_key: None,
        }
    }

    #[test]
    fn finds_exactly_the_matching_key() {
        let registry = ClientRegistry::new(vec![
            client("a", "key-of-a-123"),
            client("b", "key-of-b-456"),
        ]);
        assert_eq!(
            registry
                .find_by_api_key("key-of-b-456", SystemTime::now())
                .map(|c| c.id.as_str()),
            Some("b")
        );
        assert!(registry
            .find_by_api_key("key-of-b-45", SystemTime::now())
            .is_none());
        assert!(registry
            .find_by_api_key("key-of-b-4567", SystemTime::now())
            .is_none());
        assert!(registry.find_by_api_key("", SystemTime::now()).is_none());
    }

    #[test]
    fn an_empty_stored_key_never_matches() {
        let registry = ClientRegistry::new(vec![client("broken", "")]);
        assert!(registry.find_by_api_key("", SystemTime::now()).is_none());
    }

    #[test]
    fn a_previous_key_works_only_during_its_grace() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_900_000_000);
        let mut rotated = client("a", "new-key-of-a-123");
        rotated.previous_api_key = Some(PreviousApiKey {
            api_key: Sensitive::new("old-key-of-a-123"),
            valid_until: now + std::time::Duration::from_secs(60),
        });
        let registry = ClientRegistry::new(vec![rotated, client("b", "key-of-b-456")]);
        let found =
            |key: &str, at: SystemTime| registry.find_by_api_key(key, at).map(|c| c.id.clone());
        assert_eq!(found("new-key-of-a-123", now), Some("a".into()));
        assert_eq!(found("old-key-of-a-123", now), Some("a".into()));
        let after = now + std::time::Duration::from_secs(60);
        assert_eq!(found("old-key-of-a-123", after), None);
        assert_eq!(found("new-key-of-a-123", after), Some("a".into()));
        assert_eq!(found("old-key-of-a-12", now), None);
        assert_eq!(found("key-of-b-456", after), Some("b".into()));
    }
}
