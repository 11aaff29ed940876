//! The client registry: who may call the API, with which API key, for which IAM users, from
//! where, and under which usage plan key.

use super::source_ip::CidrList;
use crate::Sensitive;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub api_key: Sensitive,
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

    /// The client whose API key is `presented`. Every client's key is compared, each in
    /// constant time, so the answer's timing tells nothing about which key came close.
    pub fn find_by_api_key(&self, presented: &str) -> Option<&Client> {
        let presented = presented.as_bytes();
        let mut found = None;
        for client in &self.clients {
            let key = client.api_key.expose().as_bytes();
            if bool::from(key.ct_eq(presented)) && !key.is_empty() {
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
                .find_by_api_key("key-of-b-456")
                .map(|c| c.id.as_str()),
            Some("b")
        );
        assert!(registry.find_by_api_key("key-of-b-45").is_none());
        assert!(registry.find_by_api_key("key-of-b-4567").is_none());
        assert!(registry.find_by_api_key("").is_none());
    }

    #[test]
    fn an_empty_stored_key_never_matches() {
        let registry = ClientRegistry::new(vec![client("broken", "")]);
        assert!(registry.find_by_api_key("").is_none());
    }
}
