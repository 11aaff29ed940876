//! Answers CloudFormation's custom resource requests: a PUT of the response document to the
//! request's pre-signed S3 URL, with no content type (the URL's signature covers none).

use keyrot::fleet::CustomResourceResponder;
use std::time::Duration;

pub struct HttpsResponder {
    agent: ureq::Agent,
}

impl Default for HttpsResponder {
    fn default() -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .max_redirects(0)
            .build();
        Self {
            agent: config.into(),
        }
    }
}

impl CustomResourceResponder for HttpsResponder {
    async fn respond(&self, url: &str, body: &str) -> Result<(), String> {
        let (agent, url, body) = (self.agent.clone(), url.to_owned(), body.to_owned());
        tokio::task::spawn_blocking(move || {
            agent
                .put(&url)
                .send(body.as_bytes())
                .map(|_| ())
                // The URL is a credential (pre-signed): never echo it.
                .map_err(|error| format!("PUT to the response URL failed: {error}"))
        })
        .await
        .map_err(|error| format!("response task failed: {error}"))?
    }
}
