//! The authorizer decision's CPU time, from criterion's estimates (`cargo bench -p keyrot
//! --bench authorizer_decision`, which the bench script runs first).

use serde_json::{json, Value};
use std::path::Path;

pub const GROUP: &str = "authorizer_decision";

/// Median (with its confidence interval) per benchmark of the group, in microseconds; an
/// empty object when criterion has not run.
pub fn read(criterion_dir: &Path) -> Value {
    let mut result = json!({});
    let Ok(entries) = std::fs::read_dir(criterion_dir.join(GROUP)) else {
        return result;
    };
    for entry in entries.flatten() {
        let estimates = entry.path().join("new").join("estimates.json");
        let Some(median) = std::fs::read_to_string(&estimates)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .map(|e| e["median"].clone())
        else {
            continue;
        };
        let us = |v: &Value| v.as_f64().map(|ns| ns / 1e3);
        result[entry.file_name().to_string_lossy().as_ref()] = json!({
            "median_us": us(&median["point_estimate"]),
            "ci_low_us": us(&median["confidence_interval"]["lower_bound"]),
            "ci_high_us": us(&median["confidence_interval"]["upper_bound"]),
        });
    }
    result
}
