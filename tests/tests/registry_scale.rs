//! The client registry at scale on moto: 200 clients, a few of them broken, read by one
//! authorizer refresh whose Secrets Manager calls do not grow with the clients (one
//! BatchGetSecretValue per 20). Alone in its test binary: it captures logs (see api_logs.rs).

use keyrot_integration_tests::api_world::{ApiWorld, Call};
use keyrot_integration_tests::fault_proxy::FaultProxy;
use keyrot_integration_tests::logs::LogCapture;
use keyrot_integration_tests::moto::moto_url;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

const CLIENTS: usize = 200;

fn ceil_div(n: usize, d: usize) -> usize {
    n.div_ceil(d)
}

#[tokio::test]
async fn two_hundred_clients_load_in_ten_secret_calls_and_only_broken_ones_are_skipped() {
    let mut world = ApiWorld::new("scale").await;
    let user = world.users[0].clone();
    while world.clients.len() < CLIENTS {
        let id = format!("bulk-{:03}", world.clients.len());
        world.add_client(&id, vec![user.clone()], vec![]).await;
    }
    let secret = |id: &str| format!("{}{id}", world.client_secret_prefix);

    // Broken entries: one that does not parse, a secret scheduled for deletion, one deleted
    // for good, one that exists without a value.
    world
        .ssm
        .put_parameter()
        .name(format!("{}bulk-010", world.clients_path))
        .value("{not json")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .expect("break entry");
    world
        .secrets
        .delete_secret()
        .secret_id(secret("bulk-020"))
        .recovery_window_in_days(7)
        .send()
        .await
        .expect("schedule deletion");
    for id in ["bulk-030", "bulk-040"] {
        world
            .secrets
            .delete_secret()
            .secret_id(secret(id))
            .force_delete_without_recovery(true)
            .send()
            .await
            .expect("delete");
    }
    world
        .secrets
        .create_secret()
        .name(secret("bulk-040"))
        .send()
        .await
        .expect("secret without a value");
    // A key replaced by moving AWSCURRENT (as a rotation's finishSecret does): the new key
    // is the one that works.
    let moved = "bulk-050";
    let new_key = keyrot::random::random_hex(24).expect("random");
    let new_version = "0123456789abcdef0123456789abcdef";
    world
        .secrets
        .put_secret_value()
        .secret_id(secret(moved))
        .secret_string(json!({ "ClientId": moved, "ApiKey": new_key }).to_string())
        .client_request_token(new_version)
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("pending key");
    let current = world
        .secrets
        .get_secret_value()
        .secret_id(secret(moved))
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("current")
        .version_id
        .expect("version id");
    world
        .secrets
        .update_secret_version_stage()
        .secret_id(secret(moved))
        .version_stage("AWSCURRENT")
        .move_to_version_id(new_version)
        .remove_from_version_id(current)
        .send()
        .await
        .expect("move AWSCURRENT");
    let old_key = world.client(moved).api_key.clone();
    let broken: BTreeSet<&str> = ["bulk-010", "bulk-020", "bulk-030", "bulk-040"].into();

    let proxy = FaultProxy::start(&moto_url()).await;
    // Cached as deployed: one refresh serves every request below.
    let authorizer = world
        .authorizer_through(proxy.url(), Duration::from_secs(300))
        .await;
    let issue = |key: &str| Call::new("POST", "/generate-token").header("x-api-key", key);
    let capture = LogCapture::default();
    let statuses = capture
        .record(async {
            let mut statuses = Vec::new();
            for client in &world.clients {
                let mut call = issue(&client.api_key);
                if client.id == "client-narrow" {
                    call = call.from_ip("10.1.2.3"); // its own CIDR
                }
                let reply = world.call_through(&authorizer, call).await;
                statuses.push((client.id.clone(), reply.status));
            }
            let stale = world.call_through(&authorizer, issue(&old_key)).await;
            let fresh = world.call_through(&authorizer, issue(&new_key)).await;
            (statuses, stale.status, fresh.status)
        })
        .await;
    let (statuses, stale, fresh) = statuses;

    for (id, status) in &statuses {
        // Broken clients, and the moved one's old key, are refused.
        let refused = broken.contains(id.as_str()) || id == moved;
        let expected = if refused { 401 } else { 200 };
        assert_eq!(*status, expected, "client {id}");
    }
    assert_eq!(stale, 401, "the key AWSCURRENT moved away from");
    assert_eq!(fresh, 200, "the key AWSCURRENT moved to");

    // One refresh: the parameter pages (10 a page; moto also answers a NextToken after a
    // full last page, hence floor(200 / 10) + 1), ceil(199 / 20) batches (199 entries
    // parse), one read of the public keys; no GetSecretValue at all.
    let pages = CLIENTS / 10 + 1;
    assert_eq!(proxy.count("GetParametersByPath"), pages);
    assert_eq!(
        proxy.count("BatchGetSecretValue"),
        ceil_div(CLIENTS - 1, 20)
    );
    assert_eq!(proxy.count("GetSecretValue"), 0);
    assert_eq!(proxy.count("GetParameter"), 1);
    assert_eq!(proxy.calls().len(), pages + 10 + 1, "{:?}", proxy.calls());

    let skipped: BTreeSet<String> = capture
        .lines()
        .iter()
        .filter(|l| l["fields"]["decision"] == "client_skipped")
        .filter_map(|l| l["fields"]["client_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        skipped,
        broken
            .iter()
            .map(|id| id.to_string())
            .collect::<BTreeSet<_>>()
    );
    let logs = capture.text();
    for client in &world.clients {
        assert!(!logs.contains(&client.api_key), "an API key was logged");
    }
    assert!(!logs.contains(&new_key), "an API key was logged");
}
