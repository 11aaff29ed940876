//! CloudWatch Embedded Metric Format: one JSON object per line on stdout, which CloudWatch
//! Logs turns into metrics with no API call from the function.

use serde_json::{json, Map, Value};
use std::io::Write;
use std::time::SystemTime;

pub const NAMESPACE: &str = "keyrot";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF record: values of `metrics`, recorded under every dimension set in
/// `dimension_sets` (each a list of keys of `dimensions`).
pub fn record(
    dimensions: &[(&str, &str)],
    dimension_sets: &[&[&str]],
    metrics: &[(&str, f64, Unit)],
    now: SystemTime,
) -> Value {
    let timestamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimension_sets,
                "Metrics": metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (key, value) in dimensions {
        document.insert((*key).into(), json!(value));
    }
    for (name, value, _) in metrics {
        document.insert((*name).into(), json!(value));
    }
    Value::Object(document)
}

/// Writes the record as one line to stdout (where Lambda sends it to CloudWatch Logs).
pub fn emit(
    dimensions: &[(&str, &str)],
    dimension_sets: &[&[&str]],
    metrics: &[(&str, f64, Unit)],
) {
    let line = record(dimensions, dimension_sets, metrics, SystemTime::now()).to_string();
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_follows_the_embedded_metric_format() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let record = record(
            &[("SecretName", "keyrot/iam/alice"), ("Step", "createSecret")],
            &[&["SecretName"], &["SecretName", "Step"]],
            &[
                ("RotationStepSucceeded", 1.0, Unit::Count),
                ("RotationStepDuration", 12.0, Unit::Milliseconds),
            ],
            at,
        );
        assert_eq!(record["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "keyrot");
        assert_eq!(
            directive["Dimensions"],
            json!([["SecretName"], ["SecretName", "Step"]])
        );
        assert_eq!(
            directive["Metrics"][1],
            json!({"Name": "RotationStepDuration", "Unit": "Milliseconds"})
        );
        assert_eq!(record["SecretName"], "keyrot/iam/alice");
        assert_eq!(record["RotationStepSucceeded"], 1.0);
        // Every dimension and metric named in the directive is a top-level member.
        for name in [
            "SecretName",
            "Step",
            "RotationStepSucceeded",
            "RotationStepDuration",
        ] {
            assert!(record.get(name).is_some(), "{name}");
        }
    }
}
