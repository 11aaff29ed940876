//! Secrets Manager's rotation protocol: entry checks and the four steps, generic over the
//! kind of secret being rotated (see [`Rotator`]) and over the secret store (see [`SecretStore`]).

mod engine;
mod error;
mod event;
mod handler;
mod rotator;
mod router;
mod secretsmanager;
mod store;
#[cfg(test)]
mod tests;

pub use engine::{RotationEngine, StepOutcome, VERSION_LIMIT, VERSION_RETENTION};
pub use error::{parse_secret_json, RotationError};
pub use event::{RotationRequest, Step};
pub use handler::handle_rotation_event;
pub use rotator::{Rotator, SecretRef};
pub use router::ByName;
pub use secretsmanager::SecretsManagerStore;
pub use store::{SecretDescription, SecretStore, Stage};
