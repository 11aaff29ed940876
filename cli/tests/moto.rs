//! The `keyrot` binary against moto (started by ./scripts/test): every command's happy path,
//! rollback of a failed `clients add`, what `status` and `doctor` flag, and `--json` against
//! the tables. Each test has a region of its own (moto keeps SSM, Secrets Manager and API
//! Gateway per region) or registry paths of its own, so tests do not see each other.

use aws_sdk_secretsmanager::types::RotationRulesType;
use keyrot::rotation::Stage;
use keyrot_integration_tests::fault_proxy::{Fault, FaultProxy};
use keyrot_integration_tests::moto::{moto_url, sdk_config};
use keyrot_integration_tests::world::World;
use serde_json::Value;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("--json output does not parse ({e}): {}", self.stdout))
    }
}

/// Runs the CLI against `endpoint` in `region`, with extra environment.
fn keyrot(endpoint: &str, region: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", region)
        .env("AWS_ACCESS_KEY_ID", "AKIAKEYROTTEST")
        .env("AWS_SECRET_ACCESS_KEY", "keyrot-test-secret")
        .env_remove("AWS_PROFILE")
        .env_remove("KEYROT_USAGE_PLAN_ID")
        .envs(env.iter().copied())
        .output()
        .expect("run keyrot");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn config_in(endpoint: &str, region: &'static str) -> aws_config::SdkConfig {
    sdk_config(endpoint)
        .await
        .into_builder()
        .region(aws_config::Region::new(region))
        .build()
}

/// A usage plan, the only one in the test's region (so the CLI picks it).
async fn usage_plan(config: &aws_config::SdkConfig) -> String {
    aws_sdk_apigateway::Client::new(config)
        .create_usage_plan()
        .name("keyrot-clients")
        .send()
        .await
        .expect("usage plan")
        .id
        .expect("plan id")
}

async fn iam_user(config: &aws_config::SdkConfig, name: &str) {
    let _ = aws_sdk_iam::Client::new(config)
        .create_user()
        .user_name(name)
        .send()
        .await;
}

/// Values of the API keys in `plan`.
async fn plan_key_values(config: &aws_config::SdkConfig, plan: &str) -> Vec<String> {
    aws_sdk_apigateway::Client::new(config)
        .get_usage_plan_keys()
        .usage_plan_id(plan)
        .send()
        .await
        .expect("plan keys")
        .items
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| k.value)
        .collect()
}

async fn api_key_count(config: &aws_config::SdkConfig) -> usize {
    aws_sdk_apigateway::Client::new(config)
        .get_api_keys()
        .send()
        .await
        .expect("api keys")
        .items
        .unwrap_or_default()
        .len()
}

async fn secret_exists(config: &aws_config::SdkConfig, id: &str) -> bool {
    aws_sdk_secretsmanager::Client::new(config)
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .is_ok()
}

async fn parameter_exists(config: &aws_config::SdkConfig, name: &str) -> bool {
    aws_sdk_ssm::Client::new(config)
        .get_parameter()
        .name(name)
        .send()
        .await
        .is_ok()
}

async fn client_api_key(config: &aws_config::SdkConfig, client: &str) -> Value {
    let value = aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(format!("keyrot/clients/{client}"))
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("client secret")
        .secret_string
        .expect("string");
    serde_json::from_str(&value).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_clients_from_add_to_remove() {
    let moto = moto_url();
    let region = "eu-north-1";
    let config = config_in(&moto, region).await;
    let plan = usage_plan(&config).await;
    let user = format!("cli-u-{}", std::process::id());
    iam_user(&config, &user).await;
    let run = |args: &[&str]| keyrot(&moto, region, &[], args);

    // users add / list / remove.
    let added = run(&["users", "add", &user]);
    assert_eq!(added.code, 0, "{}{}", added.stdout, added.stderr);
    assert!(parameter_exists(&config, &format!("/keyrot/users/{user}")).await);
    let again = run(&["users", "add", &user]);
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.contains("already registered"),
        "{}",
        again.stdout
    );
    let missing = run(&["users", "add", "no-such-iam-user"]);
    assert_eq!(missing.code, 3);
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );
    assert_eq!(missing.stderr.lines().count(), 1, "{}", missing.stderr);
    let bad = run(&["users", "add", "bad name"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let listed = run(&["--json", "users", "list"]).json();
    let entry = listed["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["user"] == user.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(entry["state"], "pending");
    let table = run(&["users", "list"]).stdout;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&user) && l.contains("pending") && l.contains("registry")),
        "{table}"
    );

    // clients add: the API key printed once, everything made, in the plan.
    let add = run(&[
        "clients",
        "add",
        "ci",
        "--users",
        &user,
        "--cidrs",
        "10.0.0.0/8",
    ]);
    assert_eq!(add.code, 0, "{}{}", add.stdout, add.stderr);
    let secret = client_api_key(&config, "ci").await;
    let api_key = secret["ApiKey"].as_str().expect("api key").to_owned();
    assert_eq!(api_key.len(), 43);
    assert_eq!(add.stdout.matches(&api_key).count(), 1, "{}", add.stdout);
    let parameter: Value = serde_json::from_str(
        &aws_sdk_ssm::Client::new(&config)
            .get_parameter()
            .name("/keyrot/clients/ci")
            .send()
            .await
            .expect("parameter")
            .parameter
            .and_then(|p| p.value)
            .expect("value"),
    )
    .expect("json");
    assert_eq!(parameter["users"], serde_json::json!([user]));
    let usage_key = parameter["usage_key"]
        .as_str()
        .expect("usage key")
        .to_owned();
    assert!(plan_key_values(&config, &plan).await.contains(&usage_key));
    let exists = run(&["clients", "add", "ci", "--users", &user]);
    assert_eq!(exists.code, 3, "{}", exists.stderr);

    // list / show / who-can-read: tables and JSON agree, no API key anywhere.
    let list = run(&["clients", "list"]);
    let list_json = run(&["--json", "clients", "list"]).json();
    let show = run(&["clients", "show", "ci"]);
    let show_json = run(&["--json", "clients", "show", "ci"]).json();
    let who = run(&["who-can-read", &user]);
    let who_json = run(&["--json", "who-can-read", &user]).json();
    for output in [
        &list.stdout,
        &show.stdout,
        &who.stdout,
        &list_json.to_string(),
        &show_json.to_string(),
        &who_json.to_string(),
    ] {
        assert!(!output.contains(&api_key), "{output}");
    }
    assert_eq!(list.code, 0, "{}", list.stdout);
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with("ci "))
        .expect("ci row");
    let clients = list_json["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 1);
    assert!(
        row.contains(&user) && row.contains("10.0.0.0/8") && row.contains("usable"),
        "{row}"
    );
    assert_eq!(clients[0]["users"], serde_json::json!([user]));
    assert_eq!(show_json["usage_key_in_plan"], true);
    assert!(show.stdout.contains(&usage_key), "{}", show.stdout);
    assert_eq!(who_json["clients"][0]["client"], "ci");
    assert!(
        who.stdout
            .lines()
            .any(|l| l.starts_with("ci ") && l.contains("10.0.0.0/8")),
        "{}",
        who.stdout
    );

    // set: users and CIDRs change, the usage key stays.
    let set = run(&[
        "clients",
        "set",
        "ci",
        "--users",
        &format!("{user},bob"),
        "--cidrs",
        "",
    ]);
    assert_eq!(set.code, 0, "{}", set.stderr);
    let shown = run(&["--json", "clients", "show", "ci"]).json();
    assert_eq!(shown["users"], serde_json::json!([user, "bob"]));
    assert_eq!(shown["cidrs"], serde_json::json!([]));
    assert_eq!(shown["usage_key"], usage_key.as_str());

    // rotate-key: new key printed once, old key kept with its grace, refused twice in a row.
    let rotated = run(&[
        "--json",
        "clients",
        "rotate-key",
        "ci",
        "--grace-seconds",
        "600",
    ]);
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    let rotated = rotated.json();
    let secret = client_api_key(&config, "ci").await;
    assert_eq!(rotated["api_key"], secret["ApiKey"]);
    assert_eq!(secret["PreviousApiKey"], api_key.as_str());
    assert_eq!(
        secret["PreviousApiKeyValidUntil"],
        rotated["previous_key_valid_until"]
    );
    let twice = run(&["clients", "rotate-key", "ci"]);
    assert_eq!(twice.code, 3);
    assert!(twice.stderr.contains("--force"), "{}", twice.stderr);

    // remove: every piece gone; remove again is "no client".
    let removed = run(&["clients", "remove", "ci"]);
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert!(!parameter_exists(&config, "/keyrot/clients/ci").await);
    assert!(!secret_exists(&config, "keyrot/clients/ci").await);
    assert!(!plan_key_values(&config, &plan).await.contains(&usage_key));
    assert_eq!(run(&["clients", "remove", "ci"]).code, 3);

    let gone = run(&["users", "remove", &user]);
    assert_eq!(gone.code, 0, "{}", gone.stderr);
    assert!(!parameter_exists(&config, &format!("/keyrot/users/{user}")).await);
    assert_eq!(run(&["users", "remove", &user]).code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_in_the_middle_of_clients_add_leaves_nothing_half_made() {
    let moto = moto_url();
    let region = "ap-southeast-2";
    let config = config_in(&moto, region).await;
    let plan = usage_plan(&config).await;
    let proxy = FaultProxy::start(&moto).await;
    let keys_before = api_key_count(&config).await;
    // The last step fails (every retry), and separately the secret's creation response is lost.
    for (operation, fault) in [
        (
            "PutParameter",
            Fault::Reject {
                status: 400,
                code: "AccessDeniedException",
            },
        ),
        ("CreateSecret", Fault::DropResponse),
    ] {
        proxy.clear_faults();
        proxy.inject(operation, fault, 20);
        let run = keyrot(
            proxy.url(),
            region,
            &[],
            &["clients", "add", "half", "--users", "alice"],
        );
        assert_eq!(run.code, 3, "{operation}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("everything it had made was removed"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(!run.stdout.contains("API key"), "{}", run.stdout);
        assert!(
            !parameter_exists(&config, "/keyrot/clients/half").await,
            "{operation}"
        );
        assert!(
            !secret_exists(&config, "keyrot/clients/half").await,
            "{operation}"
        );
        assert!(
            plan_key_values(&config, &plan).await.is_empty(),
            "{operation}"
        );
        assert_eq!(api_key_count(&config).await, keys_before, "{operation}");
    }
    assert!(proxy.count("PutParameter") >= 1 && proxy.count("CreateSecret") >= 2);
    // A missing API Gateway is an error with its code, before anything is made.
    proxy.clear_faults();
    let list = keyrot(proxy.url(), region, &[], &["--json", "clients", "list"]).json();
    assert_eq!(list["clients"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_flags_stuck_pending_hand_made_keys_and_stale_secrets() {
    let moto = moto_url();
    let path = format!("/keyrot/users-status-{}/", std::process::id());
    let env = [("KEYROT_USERS_PARAMETER_PATH", path.as_str())];
    let run = |args: &[&str]| keyrot(&moto, "us-east-1", &env, args);

    let healthy = World::new("cli-ok").await;
    healthy.rotate().await;
    let value = healthy.value(Stage::Current).await.expect("current");
    let ok = run(&["status", &healthy.user]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    let key_id = value.access_key_id.clone().expect("key");
    let row = ok
        .stdout
        .lines()
        .find(|l| l.starts_with(&healthy.user))
        .expect("row");
    assert!(row.contains(&key_id) && row.contains("✔ managed"), "{row}");
    let ok_json = run(&["--json", "status", &healthy.user]).json();
    assert_eq!(ok_json["users"][0]["access_key_id"], key_id.as_str());
    assert_eq!(ok_json["users"][0]["slots"][0]["managed"], true);
    assert_eq!(ok_json["summary"]["attention"], 0);
    let secret = value.secret_access_key.clone().expect("secret");
    assert!(!ok.stdout.contains(&secret) && !ok_json.to_string().contains(&secret));

    let stuck = World::new("cli-stuck").await;
    stuck.rotate().await;
    stuck.start_rotation().await;
    let flagged = run(&["status", &stuck.user, "--stuck-after-seconds", "0"]);
    assert_eq!(flagged.code, 1, "{}", flagged.stdout);
    assert!(
        flagged.stdout.contains("StuckPending"),
        "{}",
        flagged.stdout
    );
    let flagged_json = run(&[
        "--json",
        "status",
        &stuck.user,
        "--stuck-after-seconds",
        "0",
    ])
    .json();
    assert!(flagged_json["users"][0]["stuck_pending"]["version_id"].is_string());
    assert_eq!(flagged_json["summary"]["attention"], 1);

    let mut blocked = World::new("cli-hand").await;
    blocked.add_foreign_key().await;
    blocked.add_foreign_key().await;
    let full = run(&["--json", "status", &blocked.user]);
    assert_eq!(full.code, 1, "{}", full.stdout);
    let codes: Vec<String> = full.json()["users"][0]["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["code"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(codes.contains(&"NoFreeKeySlot".to_owned()), "{codes:?}");

    let stale = World::new("cli-stale").await;
    stale.rotate().await;
    let mut short = stale.value(Stage::Current).await.expect("current");
    short.interval_seconds = Some(1);
    stale
        .secrets
        .put_secret_value()
        .secret_id(&stale.secret_id)
        .secret_string(short.to_sensitive().expose())
        .send()
        .await
        .expect("put");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let old = run(&["status", &stale.user]);
    assert_eq!(old.code, 1, "{}", old.stdout);
    assert!(old.stdout.contains("Stale"), "{}", old.stdout);

    // All four at once: one row each, and the summary counts three needing attention.
    let all = run(&[
        "status",
        &healthy.user,
        &stuck.user,
        &blocked.user,
        &stale.user,
        "--stuck-after-seconds",
        "0",
    ]);
    assert_eq!(all.code, 1);
    assert!(
        all.stdout.contains("4 users") && all.stdout.contains("3 need attention"),
        "{}",
        all.stdout
    );
    let unknown = run(&["status", "nobody-here"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stdout.contains("NotManaged"), "{}", unknown.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_refuses_a_stuck_rotation_and_revoke_needs_confirmation() {
    let moto = moto_url();
    let world = World::new("cli-rotate").await;
    world.rotate().await;
    world.start_rotation().await;
    let env = [("KEYROT_ROTATION_FUNCTION", "keyrot-rotation")];
    let refused = keyrot(&moto, "us-east-1", &env, &["rotate", &world.user]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("in progress or stuck"),
        "{}",
        refused.stderr
    );
    let unknown = keyrot(&moto, "us-east-1", &env, &["rotate", "nobody-here"]);
    assert_eq!(unknown.code, 3);
    assert!(
        unknown.stderr.contains("keyrot users add"),
        "{}",
        unknown.stderr
    );
    // Without a terminal and without --yes nothing is invoked.
    let key = world
        .value(Stage::Current)
        .await
        .and_then(|v| v.access_key_id)
        .expect("key");
    let unconfirmed = keyrot(
        &moto,
        "us-east-1",
        &env,
        &[
            "revoke",
            &world.user,
            "--key",
            &key,
            "--reason",
            "leaked in a log",
        ],
    );
    assert_eq!(unconfirmed.code, 2, "{}", unconfirmed.stderr);
    assert!(unconfirmed.stderr.contains("--yes"));
    let malformed = keyrot(
        &moto,
        "us-east-1",
        &env,
        &[
            "revoke",
            &world.user,
            "--key",
            "AKIA;rm",
            "--reason",
            "x",
            "--yes",
        ],
    );
    assert_eq!(malformed.code, 2, "{}", malformed.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_flags_a_disabled_schedule_and_a_missing_invoke_permission() {
    let moto = moto_url();
    let region = "sa-east-1";
    let config = config_in(&moto, region).await;
    let plan = usage_plan(&config).await;
    // moto's Lambda cannot hold a function next to the launcher's invoke patch: a stand-in
    // Lambda API answers GetPolicy (none yet, then the Secrets Manager permission).
    let lambda = FakeLambda::start();
    let scheduler = aws_sdk_scheduler::Client::new(&config);
    scheduler
        .create_schedule_group()
        .name("keyrot-ticks")
        .send()
        .await
        .expect("group");
    let target = aws_sdk_scheduler::types::Target::builder()
        .arn("arn:aws:scheduler:::aws-sdk:secretsmanager:rotateSecret")
        .role_arn("arn:aws:iam::123456789012:role/tick")
        .input(r#"{"SecretId":"keyrot/iam/alice"}"#)
        .build()
        .expect("target");
    scheduler
        .create_schedule()
        .name("tick-alice")
        .group_name("keyrot-ticks")
        .schedule_expression("rate(10 minutes)")
        .flexible_time_window(
            aws_sdk_scheduler::types::FlexibleTimeWindow::builder()
                .mode(aws_sdk_scheduler::types::FlexibleTimeWindowMode::Off)
                .build()
                .expect("window"),
        )
        .target(target.clone())
        .state(aws_sdk_scheduler::types::ScheduleState::Disabled)
        .send()
        .await
        .expect("schedule");
    // A managed secret rotating with that function.
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    secrets
        .create_secret()
        .name("keyrot/iam/alice")
        .secret_string(r#"{"UserName":"alice"}"#)
        .send()
        .await
        .expect("secret");
    secrets
        .rotate_secret()
        .secret_id("keyrot/iam/alice")
        .rotation_lambda_arn(format!(
            "arn:aws:lambda:{region}:123456789012:function:keyrot-doctor-rotation"
        ))
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(1000)
                .build(),
        )
        .send()
        .await
        .expect("rotation");
    let env = [
        ("KEYROT_SCHEDULE_GROUP", "keyrot-ticks"),
        ("AWS_ENDPOINT_URL_LAMBDA", lambda.url.as_str()),
    ];
    let sick = keyrot(&moto, region, &env, &["doctor"]);
    assert_eq!(sick.code, 1, "{}{}", sick.stdout, sick.stderr);
    let line = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        line(&sick.stdout, "schedules enabled").starts_with("✘"),
        "{}",
        sick.stdout
    );
    assert!(
        line(&sick.stdout, "tick-alice").contains("disabled") || sick.stdout.contains("tick-alice"),
        "{}",
        sick.stdout
    );
    assert!(
        line(&sick.stdout, "invoke permission").starts_with("✘"),
        "{}",
        sick.stdout
    );
    assert!(
        sick.stdout.contains("aws lambda add-permission"),
        "{}",
        sick.stdout
    );
    assert!(
        line(&sick.stdout, "rotation configured").starts_with("✔"),
        "{}",
        sick.stdout
    );
    let sick_json = keyrot(&moto, region, &env, &["--json", "doctor"]).json();
    let outcome = |name: &str| {
        sick_json["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["outcome"].clone())
    };
    assert_eq!(outcome("schedules enabled"), Some(Value::from("fail")));
    assert_eq!(outcome("invoke permission"), Some(Value::from("fail")));

    // Fixed: the schedule enabled, the permission granted.
    scheduler
        .update_schedule()
        .name("tick-alice")
        .group_name("keyrot-ticks")
        .schedule_expression("rate(10 minutes)")
        .flexible_time_window(
            aws_sdk_scheduler::types::FlexibleTimeWindow::builder()
                .mode(aws_sdk_scheduler::types::FlexibleTimeWindowMode::Off)
                .build()
                .expect("window"),
        )
        .target(target)
        .state(aws_sdk_scheduler::types::ScheduleState::Enabled)
        .send()
        .await
        .expect("enable");
    lambda.set_policy(r#"{"Version":"2012-10-17","Statement":[{"Sid":"secretsmanager","Effect":"Allow","Principal":{"Service":"secretsmanager.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"*"}]}"#);
    let better = keyrot(&moto, region, &env, &["doctor"]);
    assert!(
        line(&better.stdout, "schedules enabled").starts_with("✔"),
        "{}",
        better.stdout
    );
    assert!(
        line(&better.stdout, "invoke permission").starts_with("✔"),
        "{}",
        better.stdout
    );
    let _ = plan;
}

/// A Lambda API that answers GetPolicy only: 404 until a policy is set.
struct FakeLambda {
    url: String,
    policy: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl FakeLambda {
    fn start() -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let policy = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let shared = policy.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buffer = [0u8; 16384];
                let _ = stream.read(&mut buffer);
                let current = shared.lock().expect("lock").clone();
                let (status, body) = match current {
                    Some(policy) => (
                        "200 OK",
                        serde_json::json!({"Policy": policy, "RevisionId": "1"}).to_string(),
                    ),
                    None => (
                        "404 Not Found",
                        r#"{"Type":"User","Message":"The resource you requested does not exist."}"#
                            .to_owned(),
                    ),
                };
                let error_type = if status.starts_with("404") {
                    "x-amzn-errortype: ResourceNotFoundException\r\n"
                } else {
                    ""
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{error_type}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url, policy }
    }

    fn set_policy(&self, policy: &str) {
        *self.policy.lock().expect("lock") = Some(policy.to_owned());
    }
}

/// The policy on a client's API key secret, as Secrets Manager holds it.
async fn secret_policy(config: &aws_config::SdkConfig, id: &str) -> Option<Value> {
    aws_sdk_secretsmanager::Client::new(config)
        .get_resource_policy()
        .secret_id(id)
        .send()
        .await
        .expect("GetResourcePolicy")
        .resource_policy
        .map(|text| serde_json::from_str(&text).expect("policy JSON"))
}

/// clients add puts the stack's reader policy on the new secret; rotate-key run by someone
/// that policy refuses changes nothing and leaves no key file; a write whose answer is lost
/// is read back and its key kept; a write that fails changes nothing and leaves no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secrets_get_the_reader_policy_and_no_rotate_key_loses_a_key() {
    let moto = moto_url();
    let region = "sa-east-1";
    let config = config_in(&moto, region).await;
    usage_plan(&config).await;
    let readers = [
        "arn:aws:iam::123456789012:role/keyrot-api",
        "arn:aws:iam::123456789012:role/keyrot-authorizer",
    ];
    let joined = readers.join(",");
    let env = [("KEYROT_CLIENT_SECRET_READER_ARNS", joined.as_str())];
    let add = keyrot(
        &moto,
        region,
        &env,
        &["clients", "add", "guarded", "--users", "alice"],
    );
    assert_eq!(add.code, 0, "{}{}", add.stdout, add.stderr);
    assert!(add.stdout.contains("readable only by"), "{}", add.stdout);
    let policy = secret_policy(&config, "keyrot/clients/guarded")
        .await
        .expect("a policy");
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Effect"], "Deny");
    assert_eq!(statement["Action"], "secretsmanager:GetSecretValue");
    assert_eq!(
        statement["Condition"]["StringNotEquals"]["aws:PrincipalArn"],
        serde_json::json!(readers)
    );
    // Without a reader list (no stack, no flag): no policy, and the output says so.
    let open = keyrot(
        &moto,
        region,
        &[],
        &["clients", "add", "open", "--users", "alice"],
    );
    assert_eq!(open.code, 0, "{}{}", open.stdout, open.stderr);
    assert!(open.stdout.contains("no reader policy"), "{}", open.stdout);
    assert!(secret_policy(&config, "keyrot/clients/open")
        .await
        .is_none());

    let dir = std::env::temp_dir().join(format!("keyrot-cli-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key_file = |name: &str| dir.join(name).to_str().expect("utf-8").to_owned();
    let proxy = FaultProxy::start(&moto).await;
    let before = client_api_key(&config, "guarded").await;
    // rotate-key through the proxy with `fault` on `operation`; the run and its key file.
    let rotate_key_with = |operation: &str, fault: Fault, file: &str| {
        proxy.clear_faults();
        proxy.inject(operation, fault, 100);
        let path = key_file(file);
        let run = keyrot(
            proxy.url(),
            region,
            &env,
            &[
                "clients",
                "rotate-key",
                "guarded",
                "--force",
                "--api-key-file",
                &path,
            ],
        );
        (run, std::path::PathBuf::from(path))
    };

    // Refused by the policy: nothing changes, and no key file is left behind.
    let access_denied = Fault::Reject {
        status: 400,
        code: "AccessDeniedException",
    };
    let (denied, denied_file) = rotate_key_with("GetSecretValue", access_denied, "denied");
    assert_ne!(denied.code, 0, "{}", denied.stdout);
    assert!(
        denied.stderr.contains("BreakGlassPrincipalArn"),
        "{}",
        denied.stderr
    );
    assert!(!denied_file.exists());
    assert_eq!(client_api_key(&config, "guarded").await, before);
    // show still shows the client, and says what it could not check.
    let shown = keyrot(proxy.url(), region, &env, &["clients", "show", "guarded"]);
    assert!(shown.stdout.contains("was not checked"), "{}", shown.stdout);

    // The write's answer is lost (every attempt): read back, the new key is in place; the
    // file holding it stays.
    let (lost, lost_file) = rotate_key_with("PutSecretValue", Fault::FailAfterForward, "lost");
    assert_eq!(lost.code, 0, "{}{}", lost.stdout, lost.stderr);
    assert!(lost.stdout.contains("answer was lost"), "{}", lost.stdout);
    let in_place = client_api_key(&config, "guarded").await;
    assert_eq!(
        std::fs::read_to_string(&lost_file).expect("key file"),
        in_place["ApiKey"].as_str().expect("key")
    );
    assert_eq!(in_place["PreviousApiKey"], before["ApiKey"]);

    // The write fails outright: nothing changes, no file is left.
    let refused = Fault::Reject {
        status: 400,
        code: "InvalidRequestException",
    };
    let (failed, failed_file) = rotate_key_with("PutSecretValue", refused, "failed");
    assert_ne!(failed.code, 0, "{}", failed.stdout);
    assert!(
        failed.stderr.contains("nothing was changed"),
        "{}",
        failed.stderr
    );
    assert!(!failed_file.exists());
    assert_eq!(client_api_key(&config, "guarded").await, in_place);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A usage key two clients' entries name survives the removal of one of them, which says how
/// long its fetched keys stay valid; users outside the stack's EligibleUserPath are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_share_nothing_they_do_not_own_and_users_stay_under_the_eligible_path() {
    let moto = moto_url();
    let region = "ca-central-1";
    let config = config_in(&moto, region).await;
    let plan = usage_plan(&config).await;
    let iam = aws_sdk_iam::Client::new(&config);
    let outside = format!("cli-root-{}", std::process::id());
    let inside = format!("cli-path-{}", std::process::id());
    iam_user(&config, &outside).await;
    iam.create_user()
        .user_name(&inside)
        .path("/keyrot-managed/")
        .send()
        .await
        .expect("user under the path");
    let env = [("KEYROT_ELIGIBLE_USER_PATH", "/keyrot-managed/")];
    let refused = keyrot(&moto, region, &env, &["users", "add", &outside]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("outside the stack's EligibleUserPath"),
        "{}",
        refused.stderr
    );
    assert!(!parameter_exists(&config, &format!("/keyrot/users/{outside}")).await);
    let accepted = keyrot(&moto, region, &env, &["users", "add", &inside]);
    assert_eq!(accepted.code, 0, "{}{}", accepted.stdout, accepted.stderr);

    for client in ["one", "two"] {
        let added = keyrot(
            &moto,
            region,
            &[],
            &["clients", "add", client, "--users", &inside],
        );
        assert_eq!(added.code, 0, "{}{}", added.stdout, added.stderr);
    }
    // An operator pointed two's entry at one's usage key.
    let ssm = aws_sdk_ssm::Client::new(&config);
    let one_entry = ssm
        .get_parameter()
        .name("/keyrot/clients/one")
        .send()
        .await
        .expect("one's entry")
        .parameter
        .and_then(|p| p.value)
        .expect("value");
    let shared_key = serde_json::from_str::<Value>(&one_entry).expect("entry")["usage_key"]
        .as_str()
        .expect("usage key")
        .to_owned();
    ssm.put_parameter()
        .name("/keyrot/clients/two")
        .value(&one_entry)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .expect("two names one's usage key");
    let removed = keyrot(&moto, region, &[], &["clients", "remove", "one"]);
    assert_eq!(removed.code, 0, "{}{}", removed.stdout, removed.stderr);
    assert!(
        removed
            .stdout
            .contains("another client's entry names it too"),
        "{}",
        removed.stdout
    );
    assert!(
        removed.stdout.contains("at most three intervals"),
        "{}",
        removed.stdout
    );
    assert!(plan_key_values(&config, &plan).await.contains(&shared_key));
}
