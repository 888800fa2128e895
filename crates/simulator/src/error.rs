use std::path::PathBuf;

use hits_core::CoreError;

/// Errors of the simulator library; each names the file or setting it concerns.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("simulate config: {0}")]
    Config(String),
    #[error(transparent)]
    Plot(#[from] plots::PlotError),
}

impl SimError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SimError::Io {
            path: path.into(),
            source,
        }
    }
}
