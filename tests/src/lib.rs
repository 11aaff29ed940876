//! Test harness for keyrot's integration tests: the moto server the test script started, a
//! fault-injecting proxy in front of it, and a per-test world (IAM user + managed secret)
//! with the rotation engine wired exactly as `rotation-fn` wires it; and the whole local stack
//! (`local_stack`) for the end-to-end and `keyrot-credentials` tests.

pub mod api_world;
pub mod events;
pub mod fault_proxy;
pub mod fleet_world;
pub mod local_stack;
pub mod logs;
pub mod moto;
pub mod world;
