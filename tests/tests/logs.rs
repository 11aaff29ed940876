//! Logs are JSON, carry the request id, and never contain a secret access key.

use keyrot::notify::NoNotifier;
use keyrot::rotation::{handle_rotation_event, Stage};
use keyrot_integration_tests::fault_proxy::Fault;
use keyrot_integration_tests::logs::LogCapture;
use keyrot_integration_tests::world::{World, STEPS};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

#[tokio::test]
async fn a_full_rotation_logs_json_decisions_without_secrets() {
    let world = World::new("logs").await;
    let capture = LogCapture::default();
    let mut secrets_handed_out = Vec::new();
    let mut request_ids = Vec::new();
    capture
        .record(async {
            for rotation in 0..3 {
                let token = world.start_rotation().await;
                if rotation == 2 {
                    // A failing attempt logs too: the error path must be as clean.
                    world
                        .proxy
                        .inject("GetCallerIdentity", Fault::invalid_client_token(), 2);
                }
                for step in STEPS {
                    let mut context = Context::default();
                    context.request_id = format!("req-{rotation}-{}", step.as_str());
                    request_ids.push(context.request_id.clone());
                    let event = json!({
                        "Step": step.as_str(),
                        "SecretId": world.secret_id,
                        "ClientRequestToken": token,
                    });
                    handle_rotation_event(
                        &world.engine,
                        &NoNotifier,
                        LambdaEvent::new(event, context),
                    )
                    .await
                    .expect("step");
                }
                let current = world.value(Stage::Current).await.expect("current");
                secrets_handed_out.push(current.secret_access_key.clone().expect("secret"));
            }
        })
        .await;

    let text = capture.text();
    for secret in &secrets_handed_out {
        assert!(
            !text.contains(secret.as_str()),
            "a SecretAccessKey was logged"
        );
    }
    assert!(
        !text.contains("SecretAccessKey"),
        "no secret value is logged whole"
    );
    let lines = capture.lines();
    for request_id in &request_ids {
        let step_lines: Vec<_> = lines
            .iter()
            .filter(|line| line["span"]["request_id"] == json!(request_id))
            .collect();
        assert!(
            step_lines
                .iter()
                .any(|l| l["fields"]["message"] == json!("rotation step succeeded")),
            "step {request_id} logs its outcome"
        );
    }
    let decisions: Vec<&str> = lines
        .iter()
        .filter_map(|line| line["fields"]["decision"].as_str())
        .collect();
    for expected in [
        "created_key",
        "pending_stored",
        "key_verified",
        "promoted",
        "deleted_key",
        "key_not_yet_accepted",
    ] {
        assert!(
            decisions.contains(&expected),
            "decision {expected} is logged: {decisions:?}"
        );
    }
}

#[tokio::test]
async fn failures_are_logged_with_their_code_and_no_secret() {
    let world = World::new("logs-fail").await;
    world.rotate().await;
    let current = world.value(Stage::Current).await.expect("current");
    let token = world.start_rotation().await;
    world
        .proxy
        .inject("GetCallerIdentity", Fault::invalid_client_token(), 1_000);
    let capture = LogCapture::default();
    let pending_secret = capture
        .record(async {
            for step in STEPS {
                let mut context = Context::default();
                context.request_id = format!("fail-{}", step.as_str());
                let event = json!({"Step": step.as_str(), "SecretId": world.secret_id, "ClientRequestToken": token});
                if handle_rotation_event(&world.engine, &NoNotifier, LambdaEvent::new(event, context)).await.is_err() {
                    break;
                }
            }
            world.value_of_version(&token).await.and_then(|v| v.secret_access_key)
        })
        .await
        .expect("pending key exists");
    let text = capture.text();
    assert!(!text.contains(&pending_secret));
    assert!(!text.contains(current.secret_access_key.as_deref().expect("secret")));
    let failure = capture
        .lines()
        .into_iter()
        .find(|line| line["fields"]["message"] == json!("rotation step failed"))
        .expect("failure logged");
    assert_eq!(failure["fields"]["error_code"], json!("KeyNotVerified"));
    assert_eq!(failure["span"]["request_id"], json!("fail-testSecret"));
    assert_eq!(failure["level"], json!("ERROR"));
}
