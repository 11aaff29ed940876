//! The authorizer and api-fn log their decisions and never a credential. Alone in its test
//! binary: tracing's per-callsite interest cache is process-wide, and tests running beside
//! it without a subscriber could make it miss events.

use keyrot_integration_tests::api_world::ApiWorld;
use keyrot_integration_tests::logs::LogCapture;
use serde_json::json;

#[tokio::test]
async fn registry_changes_apply_without_redeploy_and_nothing_secret_is_logged() {
    let world = ApiWorld::new("registry").await;
    let capture = LogCapture::default();
    let (token, handed_out) = capture
        .record(async {
            let token = world.token_for("client-a").await;
            let reply = world
                .call(world.active_key_call("client-a", &token, &world.users[0]))
                .await;
            assert_eq!(reply.status, 200);
            // The operator grants client-a bob too: one parameter update, no redeploy.
            let name = format!("{}client-a", world.clients_path);
            world
                .ssm
                .put_parameter()
                .name(name)
                .value(json!({ "users": world.users }).to_string())
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .overwrite(true)
                .send()
                .await
                .unwrap();
            let reply_bob = world
                .call(world.active_key_call("client-a", &token, &world.users[1]))
                .await;
            assert_eq!(reply_bob.status, 200, "{reply_bob:?}");
            // Refusals log too.
            world
                .call(world.active_key_call("client-b", &token, &world.users[1]))
                .await;
            (
                token,
                vec![
                    reply.body["SecretAccessKey"].clone(),
                    reply_bob.body["SecretAccessKey"].clone(),
                ],
            )
        })
        .await;
    let logs = capture.text();
    assert!(!logs.contains(&token), "a token was logged");
    for client in &world.clients {
        assert!(!logs.contains(&client.api_key), "an API key was logged");
    }
    for secret in handed_out {
        assert!(
            !logs.contains(secret.as_str().unwrap()),
            "a secret access key was logged"
        );
    }
    let lines = capture.lines();
    assert!(lines
        .iter()
        .any(|l| l["fields"]["decision"] == "allow" && l["fields"]["client_id"] == "client-a"));
    assert!(lines.iter().any(|l| l["fields"]["decision"] == "key_read"));
    assert!(lines
        .iter()
        .any(|l| l["fields"]["reason"] == "token_of_another_client"));
}
