//! Shared vocabulary of the hits-rb pipeline: the four stamp channels, the pipeline
//! configuration every stage reads, atomic artifact writes and stage manifests.

pub mod channel;
pub mod config;
pub mod error;
pub mod io;
pub mod manifest;

pub use channel::{Channel, STAMP_PIXELS, STAMP_SIDE, TENSOR_LEN};
pub use config::Pipeline;
pub use error::CoreError;

/// Log to stderr at `info` unless `RUST_LOG` says otherwise; every stage binary calls this first.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
