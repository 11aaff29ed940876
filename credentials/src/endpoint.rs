//! The `--api` URL: HTTPS, or plain HTTP to a loopback address only (the local stack), so a
//! typo cannot send the API key in the clear across a network.

use std::net::IpAddr;
use ureq::http::Uri;

#[derive(Debug, thiserror::Error)]
#[error("invalid --api URL {url:?}: {reason}")]
pub struct EndpointError {
    url: String,
    reason: &'static str,
}

/// The API's base URL (up to and including the stage), without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(String);

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let refuse = |reason| EndpointError {
            url: url.to_owned(),
            reason,
        };
        let base = url.trim_end_matches('/');
        let uri: Uri = base.parse().map_err(|_| {
            refuse("not a URL, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/v1")
        })?;
        if uri.query().is_some() || base.contains('#') {
            return Err(refuse("no query or fragment: the stage URL only"));
        }
        let host = uri.host().ok_or_else(|| refuse("no host"))?;
        if uri
            .authority()
            .is_some_and(|authority| authority.as_str().contains('@'))
        {
            return Err(refuse("no user name or password in the URL"));
        }
        match uri.scheme_str() {
            Some("https") => Ok(Self(base.to_owned())),
            Some("http") if is_loopback(host) => Ok(Self(base.to_owned())),
            Some("http") => Err(refuse(
                "plain http is accepted only for loopback addresses (127.0.0.0/8, ::1, localhost); use https",
            )),
            _ => Err(refuse("the URL must start with https://")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for ok in [
            "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
            "http://127.0.0.1:3000/v1/",
            "http://127.0.0.2:3000/v1",
            "http://[::1]:3000/v1",
            "http://localhost:3000/v1",
        ] {
            assert!(Endpoint::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/v1",
            "http://example.com/v1",
            "http://127.0.0.1.example.com/v1",
            "ftp://127.0.0.1/v1",
            "127.0.0.1:3000/v1",
            "https://host/v1?x=1",
            "https://user:pw@host/v1",
            "",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_trailing_slash_is_dropped() {
        let endpoint = Endpoint::parse("http://127.0.0.1:3000/v1/").expect("valid");
        assert_eq!(endpoint.as_str(), "http://127.0.0.1:3000/v1");
    }
}
