//! The rotation event parser on arbitrary JSON: a request or an error, never a panic; an
//! accepted event names a known step and non-empty ids.
#![no_main]

use keyrot::rotation::RotationRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(request) = RotationRequest::from_event(value) {
        assert!(!request.secret_id.is_empty() && !request.token.is_empty());
    }
});
