//! Token verification of arbitrary input: never a panic, and nothing but the one real token
//! is accepted.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = common::fixture();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let accepted = f.verifier.verify(text, f.now).is_ok();
    assert_eq!(accepted, text == f.token);
});
