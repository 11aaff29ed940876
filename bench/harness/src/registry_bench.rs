//! The authorizer with a large client registry (`--registry-clients N`): cold starts, and the
//! AWS calls of one registry refresh counted by the tests' proxy in front of moto. The
//! registry is the integration tests' API world (moto at `KEYROT_TEST_MOTO_URL`) grown to N
//! clients. With `--registry-baseline BIN` the same measurements run on that authorizer
//! binary too (an earlier build), in the same run, on the same moto and registry.

use crate::measure::{self, cold_json, is_allow};
use crate::stats::Summary;
use crate::subject::{Program, Running, Spec};
use crate::{Args, BenchError};
use keyrot_integration_tests::api_world::{ApiWorld, Call, ALLOWED_CIDRS};
use keyrot_integration_tests::events::authorizer_event;
use keyrot_integration_tests::fault_proxy::FaultProxy;
use keyrot_integration_tests::moto::{moto_url, MOTO_URL_VARIABLE};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Invocations of a warm process whose registry TTL is 0, so each one refreshes.
const REFRESH_RUNS: usize = 30;
/// Cold starts through the counting proxy.
const COUNTED_RUNS: usize = 3;

pub async fn measure(args: &Args, clients: usize) -> Result<Value, BenchError> {
    if std::env::var(MOTO_URL_VARIABLE).is_err() {
        return Err(BenchError::Setup(format!(
            "--registry-clients needs moto: start tools/moto_server.py and set {MOTO_URL_VARIABLE}"
        )));
    }
    let mut world = ApiWorld::new("bench-registry").await;
    let user = world.users[0].clone();
    while world.clients.len() < clients {
        let id = format!("bench-{:04}", world.clients.len());
        world.add_client(&id, vec![user.clone()], vec![]).await;
    }
    let last = world.clients.last().map(|c| c.api_key.clone());
    let key = last.ok_or_else(|| BenchError::Setup("no clients".into()))?;
    let event = authorizer_event(&Call::new("POST", "/generate-token").header("x-api-key", &key));

    let mut subjects = vec![("after", args.bin_dir.join("authorizer-fn"))];
    if let Some(baseline) = &args.registry_baseline {
        subjects.insert(0, ("before", baseline.clone()));
    }
    let mut results = json!({ "clients": clients });
    for (name, binary) in subjects {
        crate::step(&format!(
            "registry of {clients} clients: {name} ({})",
            binary.display()
        ));
        results[name] = measure_binary(args, &world, &binary, &event, name).await?;
    }
    Ok(results)
}

async fn measure_binary(
    args: &Args,
    world: &ApiWorld,
    binary: &Path,
    event: &Value,
    name: &str,
) -> Result<Value, BenchError> {
    let log = args.out_dir.join(format!("registry-{name}.log"));
    let label = format!("authorizer ({name}, registry)");
    // Timings talk to moto directly; the counting proxy would add its own hop to every call.
    let spec = authorizer_spec(world, binary, &moto_url(), "30");
    let cold = measure::cold_starts(&label, &spec, event, is_allow, args.cold_runs, &log).await?;
    // Calls: cold starts through the proxy (each one is exactly one refresh).
    let proxy = FaultProxy::start(&moto_url()).await;
    let counted = authorizer_spec(world, binary, proxy.url(), "30");
    measure::cold_starts(&label, &counted, event, is_allow, COUNTED_RUNS, &log).await?;
    let calls = per_run(&proxy.calls(), COUNTED_RUNS);

    // Refresh time: a warm process with TTL 0 reloads the registry and keys on every call.
    let mut running =
        Running::start(&authorizer_spec(world, binary, &moto_url(), "0"), &log).await?;
    let refresh = measure::warm(&label, &mut running, event, is_allow, 3, REFRESH_RUNS).await;
    running.stop().await;
    Ok(json!({
        "cold": cold_json(&cold),
        "calls_per_cold_start": calls,
        "refresh": Summary::of(&refresh?).to_json(),
    }))
}

/// Calls of each operation divided by `runs` (every run made the same ones).
fn per_run(calls: &[String], runs: usize) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for call in calls {
        *counts.entry(call.clone()).or_default() += 1.0;
    }
    for count in counts.values_mut() {
        *count /= runs.max(1) as f64;
    }
    counts
}

fn authorizer_spec(world: &ApiWorld, binary: &Path, endpoint: &str, ttl: &str) -> Spec {
    let env = [
        ("AWS_LAMBDA_FUNCTION_NAME", "authorizer-fn"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "AKIAKEYROTTEST"),
        ("AWS_SECRET_ACCESS_KEY", "keyrot-test-secret"),
        ("KEYROT_ALLOWED_CIDRS", ALLOWED_CIDRS),
        ("KEYROT_TOKEN_ISSUER", &world.issuer),
        ("KEYROT_TOKEN_AUDIENCE", &world.audience),
        ("KEYROT_CLIENTS_PARAMETER_PATH", &world.clients_path),
        ("KEYROT_CLIENT_SECRET_PREFIX", &world.client_secret_prefix),
        ("KEYROT_PUBLIC_KEYS_PARAMETER", &world.public_keys_parameter),
        ("KEYROT_REGISTRY_TTL_SECONDS", ttl),
    ];
    Spec {
        function: "authorizer-fn".into(),
        program: Program::Bootstrap(binary.to_owned()),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// The BENCHMARKS.md table of a `measure` result.
pub fn render(results: &Value, machine: &str) -> String {
    let clients = results["clients"].as_u64().unwrap_or_default();
    let columns: Vec<&str> = ["before", "after"]
        .into_iter()
        .filter(|c| !results[*c].is_null())
        .collect();
    let mut out = format!(
        "Measured {machine}. Registry of {clients} clients on moto; cold starts: {} per binary; refresh: {REFRESH_RUNS} warm invocations with the registry TTL at 0.\n\n",
        results[columns.first().copied().unwrap_or("after")]["cold"]["total"]["runs"]
    );
    out.push_str(&format!("| metric | {} |\n|---|", columns.join(" | ")));
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    let ms = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.1} ms"))
            .unwrap_or_else(|| "–".into())
    };
    let mut row = |label: &str, cell: &dyn Fn(&Value) -> String| {
        let cells: Vec<String> = columns.iter().map(|c| cell(&results[*c])).collect();
        out.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    };
    row("authorizer cold start (median)", &|r| {
        ms(&r["cold"]["total"]["median_ms"])
    });
    row("cold start p95", &|r| ms(&r["cold"]["total"]["p95_ms"]));
    row("first invocation (median)", &|r| {
        ms(&r["cold"]["first_invocation"]["median_ms"])
    });
    row("registry + keys refresh, warm (median)", &|r| {
        ms(&r["refresh"]["median_ms"])
    });
    let mut operations: Vec<String> = Vec::new();
    for c in &columns {
        if let Some(calls) = results[*c]["calls_per_cold_start"].as_object() {
            operations.extend(
                calls
                    .keys()
                    .filter(|k| !operations.contains(k))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
    }
    operations.sort();
    for operation in &operations {
        row(&format!("{operation} calls per refresh"), &|r| {
            r["calls_per_cold_start"][operation.as_str()]
                .as_f64()
                .map(|n| format!("{n}"))
                .unwrap_or_else(|| "0".into())
        });
    }
    out
}
