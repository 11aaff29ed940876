//! `KeyApi` over HTTP(S) with ureq: one blocking request per call, bounded by a global
//! timeout, no redirects (a redirect would carry the API key elsewhere), certificates checked
//! against the platform's trust store.

use crate::api::{ActiveKey, ApiError, Call, KeyApi, Token};
use crate::clock::{parse_http_date, parse_rfc3339, Seconds};
use crate::endpoint::Endpoint;
use crate::secret::Secret;
use serde::Deserialize;
use std::time::Duration;
use ureq::tls::{RootCerts, TlsConfig};
use ureq::Agent;

/// Far above a key or token response (a few hundred bytes); refuses a runaway body.
const MAX_BODY_BYTES: u64 = 64 * 1024;

pub struct HttpApi {
    agent: Agent,
    endpoint: Endpoint,
    api_key: Secret,
    timeout_seconds: u64,
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyBody {
    user_name: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    expiration: String,
    refresh_after: Option<String>,
}

/// API Gateway answers `{"message": …}` (or `{"Message": …}`), api-fn `{"error", "message"}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(alias = "Message")]
    message: Option<String>,
}

impl HttpApi {
    pub fn new(endpoint: Endpoint, api_key: Secret, timeout_seconds: u64) -> Self {
        let config = Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(timeout_seconds)))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("keyrot-credentials/", env!("CARGO_PKG_VERSION")))
            .tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::PlatformVerifier)
                    .build(),
            )
            .build();
        Self {
            agent: Agent::new_with_config(config),
            endpoint,
            api_key,
            timeout_seconds,
        }
    }

    fn transport_error(&self, error: ureq::Error) -> ApiError {
        match error {
            ureq::Error::Timeout(_) => ApiError::Timeout(self.timeout_seconds),
            other => ApiError::Unreachable(other.to_string()),
        }
    }

    /// The body and `Date` of a 200, or the error its status and message mean.
    fn read(
        &self,
        call: Call,
        user: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(Vec<u8>, Option<Seconds>), ApiError> {
        let mut response = result.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let date = response
            .headers()
            .get(ureq::http::header::DATE)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_http_date);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| self.transport_error(e))?;
        if status == 200 {
            return Ok((body, date));
        }
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .unwrap_or_default()
            .message
            .unwrap_or_default();
        Err(ApiError::from_status(call, status, &message, user))
    }
}

impl KeyApi for HttpApi {
    fn generate_token(&self) -> Result<Token, ApiError> {
        let url = format!("{}/generate-token", self.endpoint.as_str());
        let result = self
            .agent
            .post(&url)
            .header("x-api-key", self.api_key.expose())
            .send_empty();
        let (body, _) = self.read(Call::GenerateToken, "", result)?;
        token_from_body(&body)
    }

    fn active_key(&self, token: &Secret, user: &str) -> Result<ActiveKey, ApiError> {
        let url = format!(
            "{}/active-key?username={}",
            self.endpoint.as_str(),
            percent_encode(user)
        );
        let result = self
            .agent
            .get(&url)
            .header("x-api-key", self.api_key.expose())
            .header("authorization", format!("Bearer {}", token.expose()))
            .call();
        let (body, server_date) = self.read(Call::ActiveKey, user, result)?;
        key_from_body(&body, user, server_date)
    }
}

/// A `POST /generate-token` answer's body (whatever the network delivered).
pub fn token_from_body(body: &[u8]) -> Result<Token, ApiError> {
    let parsed: TokenBody = serde_json::from_slice(body)
        .map_err(|_| ApiError::Unexpected("generate-token body is not a token".into()))?;
    Ok(Token {
        value: Secret::new(parsed.token),
        expires_in: parsed.expires_in,
    })
}

/// A `GET /active-key` answer's body for `user`, with the response's `Date` (whatever the
/// network delivered): another user's key or a time that is not RFC 3339 is refused.
pub fn key_from_body(
    body: &[u8],
    user: &str,
    server_date: Option<Seconds>,
) -> Result<ActiveKey, ApiError> {
    let parsed: KeyBody = serde_json::from_slice(body)
        .map_err(|_| ApiError::Unexpected("active-key body is not a key".into()))?;
    if parsed.user_name.as_deref().is_some_and(|name| name != user) {
        return Err(ApiError::Unexpected(format!(
            "asked for {user}, got the key of {}",
            parsed.user_name.unwrap_or_default()
        )));
    }
    let expiration = parse_rfc3339(&parsed.expiration)
        .ok_or_else(|| ApiError::Unexpected("Expiration is not RFC 3339".into()))?;
    let refresh_after = match parsed.refresh_after.as_deref() {
        Some(text) => Some(
            parse_rfc3339(text)
                .ok_or_else(|| ApiError::Unexpected("RefreshAfter is not RFC 3339".into()))?,
        ),
        None => None,
    };
    Ok(ActiveKey {
        access_key_id: parsed.access_key_id,
        secret_access_key: Secret::new(parsed.secret_access_key),
        expiration,
        refresh_after,
        server_date,
    })
}

/// RFC 3986 percent-encoding of everything but unreserved characters: IAM user names may hold
/// `+ = , @`, which mean something in a query string.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Answers one request on a loopback port with `headers` and a key body; returns the URL.
    fn one_answer(headers: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = r#"{"AccessKeyId":"AKIA1","SecretAccessKey":"s","Expiration":"2026-11-28T10:25:10Z","RefreshAfter":"2026-11-28T10:15:10Z"}"#;
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 200 OK\r\n{headers}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        });
        format!("http://127.0.0.1:{port}/v1")
    }

    fn fetch(url: &str) -> ActiveKey {
        let endpoint = Endpoint::parse(url).expect("url");
        HttpApi::new(endpoint, Secret::new("k"), 5)
            .active_key(&Secret::new("t"), "alice")
            .expect("key")
    }

    #[test]
    fn the_key_comes_with_the_response_date() {
        let key = fetch(&one_answer("date: Sat, 28 Nov 2026 10:05:10 GMT\r\n"));
        assert_eq!(key.server_date, parse_rfc3339("2026-11-28T10:05:10Z"));
        assert_eq!(
            key.expiration,
            parse_rfc3339("2026-11-28T10:25:10Z").expect("t")
        );
        assert_eq!(fetch(&one_answer("")).server_date, None);
        assert_eq!(fetch(&one_answer("date: soon\r\n")).server_date, None);
    }

    #[test]
    fn user_names_are_query_safe() {
        assert_eq!(percent_encode("alice"), "alice");
        assert_eq!(percent_encode("a+b=c,d@e.f_g-h"), "a%2Bb%3Dc%2Cd%40e.f_g-h");
        assert_eq!(percent_encode("x&username=bob"), "x%26username%3Dbob");
    }
}
