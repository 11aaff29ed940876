//! The API: client registry, source IP rules, tokens, the authorizer's decision and the
//! read/issue endpoints of `api-fn`.

pub mod authorizer;
pub mod authorizer_service;
pub mod caller_check;
pub mod clients;
pub mod config;
pub mod endpoints;
pub mod key_times;
pub mod parameters;
pub mod registry_entry;
pub mod registry_source;
#[cfg(test)]
mod registry_source_tests;
pub mod secret_batch;
pub mod secret_reader;
pub mod source_ip;
pub mod token;
