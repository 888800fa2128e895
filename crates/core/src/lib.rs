//! Shared vocabulary of the hits-rb pipeline: the four stamp channels, the pipeline
//! configuration every stage reads, atomic artifact writes and stage manifests.

pub mod arrow_io;
pub mod channel;
pub mod config;
pub mod confusion;
pub mod decoder;
pub mod digest;
pub mod error;
pub mod io;
pub mod manifest;
pub mod stage;
pub mod table;

pub use channel::{Channel, STAMP_PIXELS, STAMP_SIDE, TENSOR_LEN};
pub use config::Pipeline;
pub use config::Stage;
pub use error::CoreError;

/// Run a stage binary's body: set up logging, and turn an error into one `error: …` line on
/// stderr and a non-zero exit status (never a panic or a multi-line backtrace).
pub fn run_main<E: std::fmt::Display>(
    body: impl FnOnce() -> Result<(), E>,
) -> std::process::ExitCode {
    stage::start_clock();
    init_tracing();
    match body() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` also prints the context chain of an anyhow error, joined by ": ".
            eprintln!("error: {}", format!("{error:#}").replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log to stderr at `info` unless `RUST_LOG` says otherwise; every stage binary calls this first.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
