//! Failure mail through SES (on moto): sent for a failed step, naming the secret and the
//! error, never carrying key material.

use keyrot::notify::{NoNotifier, SesNotifier};
use keyrot::rotation::{handle_rotation_event, Stage, Step};
use keyrot_integration_tests::fault_proxy::Fault;
use keyrot_integration_tests::moto::{moto_url, sdk_config};
use keyrot_integration_tests::world::World;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

const SENDER: &str = "keyrot-alerts@example.com";

#[tokio::test]
async fn a_failed_step_is_mailed_without_key_material() {
    let world = World::new("mail").await;
    let direct = sdk_config(&moto_url()).await;
    aws_sdk_sesv2::Client::new(&direct)
        .create_email_identity()
        .email_identity(SENDER)
        .send()
        .await
        .expect("verify sender on moto");
    let notifier = SesNotifier::new(
        aws_sdk_sesv2::Client::new(&sdk_config(world.proxy.url()).await),
        SENDER,
        "ops@example.com",
    );
    world.rotate().await;
    let current = world.value(Stage::Current).await.expect("current");
    let token = world.start_rotation().await;
    world.step(Step::Create, &token).await.expect("create");
    world.step(Step::Set, &token).await.expect("set");
    let pending = world.value_of_version(&token).await.expect("pending");
    world
        .proxy
        .inject("GetCallerIdentity", Fault::invalid_client_token(), 1_000);

    let event = |step: Step| {
        let mut context = Context::default();
        context.request_id = format!("mail-{}", step.as_str());
        LambdaEvent::new(
            json!({"Step": step.as_str(), "SecretId": world.secret_id, "ClientRequestToken": token}),
            context,
        )
    };
    let capture = keyrot_integration_tests::logs::LogCapture::default();
    let failed = capture
        .record(handle_rotation_event(
            &world.engine,
            &notifier,
            event(Step::Test),
        ))
        .await;
    assert!(failed.is_err());
    assert!(
        capture
            .lines()
            .iter()
            .any(|l| l["fields"]["decision"] == "mail_sent"),
        "SES accepted the mail: {}",
        capture.text()
    );
    let mails = world.proxy.bodies("SendEmail");
    assert_eq!(mails.len(), 1, "one mail per failed step");
    let mail = &mails[0];
    assert!(
        mail.contains(&world.secret_id)
            && mail.contains("KeyNotVerified")
            && mail.contains("testSecret"),
        "{mail}"
    );
    assert!(mail.contains("ops@example.com") && mail.contains(SENDER));
    for secret in [&current.secret_access_key, &pending.secret_access_key] {
        assert!(
            !mail.contains(secret.as_deref().expect("secret")),
            "key material in the mail"
        );
    }

    // Successful steps mail nothing; neither does the off switch.
    world.proxy.clear_faults();
    handle_rotation_event(&world.engine, &notifier, event(Step::Test))
        .await
        .expect("test passes now");
    assert_eq!(world.proxy.bodies("SendEmail").len(), 1);
    world
        .proxy
        .inject("GetCallerIdentity", Fault::invalid_client_token(), 1_000);
    assert!(
        handle_rotation_event(&world.engine, &NoNotifier, event(Step::Test))
            .await
            .is_err()
    );
    assert_eq!(world.proxy.bodies("SendEmail").len(), 1);
}
