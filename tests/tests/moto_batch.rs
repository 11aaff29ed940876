//! tools/moto_server.py makes moto's BatchGetSecretValue (SecretIdList form) answer as AWS
//! does where keyrot's registry depends on it: AWSCURRENT values, per-secret errors, at most
//! 20 names.

use keyrot_integration_tests::moto::{moto_url, sdk_config};
use std::collections::BTreeMap;

#[tokio::test]
async fn batch_reads_report_each_unreadable_secret_and_read_awscurrent() {
    let config = sdk_config(&moto_url()).await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let base = format!("kr-moto-batch/{}", std::process::id());
    let name = |s: &str| format!("{base}/{s}");
    for (id, value) in [
        ("good", Some("v1")),
        ("moved", Some("old")),
        ("empty", None),
    ] {
        sm.create_secret()
            .name(name(id))
            .set_secret_string(value.map(str::to_owned))
            .send()
            .await
            .expect("create");
    }
    sm.create_secret()
        .name(name("deleting"))
        .secret_string("x")
        .send()
        .await
        .expect("create");
    sm.delete_secret()
        .secret_id(name("deleting"))
        .recovery_window_in_days(7)
        .send()
        .await
        .expect("schedule deletion");
    let token = "fedcba9876543210fedcba9876543210";
    sm.put_secret_value()
        .secret_id(name("moved"))
        .secret_string("new")
        .client_request_token(token)
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("pending");
    let current = sm
        .get_secret_value()
        .secret_id(name("moved"))
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("current")
        .version_id
        .expect("id");
    sm.update_secret_version_stage()
        .secret_id(name("moved"))
        .version_stage("AWSCURRENT")
        .move_to_version_id(token)
        .remove_from_version_id(current)
        .send()
        .await
        .expect("move");

    let ids = ["good", "moved", "empty", "deleting", "missing"].map(name);
    let output = sm
        .batch_get_secret_value()
        .set_secret_id_list(Some(ids.to_vec()))
        .send()
        .await
        .expect("the call succeeds whatever the secrets");
    let values: BTreeMap<String, String> = output
        .secret_values()
        .iter()
        .map(|v| {
            (
                v.name().unwrap_or_default().to_owned(),
                v.secret_string().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        values,
        BTreeMap::from([(name("good"), "v1".into()), (name("moved"), "new".into())])
    );
    let errors: BTreeMap<String, String> = output
        .errors()
        .iter()
        .map(|e| {
            (
                e.secret_id().unwrap_or_default().to_owned(),
                e.error_code().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        BTreeMap::from([
            (name("empty"), "ResourceNotFoundException".into()),
            (name("deleting"), "InvalidRequestException".into()),
            (name("missing"), "ResourceNotFoundException".into()),
        ])
    );
    assert!(output.next_token().is_none());

    let too_many: Vec<String> = (0..21).map(|i| name(&format!("n{i}"))).collect();
    let refused = sm
        .batch_get_secret_value()
        .set_secret_id_list(Some(too_many))
        .send()
        .await
        .expect_err("21 names are refused");
    let code = aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&refused);
    assert_eq!(code, Some("ValidationException"));
}
