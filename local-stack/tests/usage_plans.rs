//! The local gateway's usage-plan check (`usage_plans.rs`) against moto's API Gateway: AWS
//! lets an authorized request through only under the value of an enabled API key attached to
//! the stage's usage plan (ApiKeySourceType AUTHORIZER); anything else is 403 "Forbidden".
//! Uses the moto server that ./scripts/test starts (KEYROT_TEST_MOTO_URL).

use keyrot_local::usage_plans::UsagePlans;

fn moto_url() -> String {
    std::env::var("KEYROT_TEST_MOTO_URL")
        .expect("KEYROT_TEST_MOTO_URL: run through ./scripts/test, which starts moto")
}

#[tokio::test]
async fn only_enabled_keys_of_the_stages_plan_are_admitted() {
    let unique = std::process::id();
    let plans = UsagePlans::provision(&moto_url(), "v1")
        .await
        .expect("plan");
    let other_plan = UsagePlans::provision(&moto_url(), "v1")
        .await
        .expect("plan");
    let attached = format!("usage-attached-{unique}-0123456789");
    let elsewhere = format!("usage-elsewhere-{unique}-0123456789");
    let disabled = format!("usage-disabled-{unique}-0123456789");
    plans.add_key("attached", &attached).await.expect("key");
    other_plan
        .add_key("elsewhere", &elsewhere)
        .await
        .expect("key");
    let disabled_id = plans.add_key("disabled", &disabled).await.expect("key");
    plans.disable_key(&disabled_id).await.expect("disable");

    assert!(plans.admits(Some(&attached)).await.expect("check"));
    assert!(
        !plans.admits(Some(&elsewhere)).await.expect("check"),
        "another plan's key"
    );
    assert!(
        !plans.admits(Some(&disabled)).await.expect("check"),
        "a disabled key"
    );
    assert!(!plans
        .admits(Some("exists-nowhere-0123456789"))
        .await
        .expect("check"));
    assert!(
        !plans.admits(None).await.expect("check"),
        "no usage key at all"
    );
}
