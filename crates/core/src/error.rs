use std::path::PathBuf;

/// Errors of the shared pipeline plumbing. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    // The io error is part of the message, not a `source`: stage errors print as one line.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Arrow { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    /// A CSV table that is missing, empty or ragged, or lacks a column.
    #[error("{path}: {message}")]
    Csv { path: PathBuf, message: String },
    /// A bad value in a CSV table; `row` counts data rows from 1, `line` is the file line.
    #[error("{path}: row {row} (line {line}), column {column}: {message}")]
    Cell {
        path: PathBuf,
        row: usize,
        line: usize,
        column: String,
        message: String,
    },
}

impl CoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            error: source,
        }
    }
}

/// Declares a stage's error enum: first one transparent `#[from]` variant per error of the
/// crates the stage builds on (their messages already name the file, row and column, so they
/// are shown as they are), then the stage's own variants, written as in any thiserror enum.
///
/// ```
/// use std::path::PathBuf;
/// use hits_core::CoreError;
///
/// hits_core::stage_error! {
///     /// Everything that can stop the stage.
///     pub enum StageError {
///         upstream { Core(CoreError) }
///         /// Data the stage cannot use.
///         #[error("{path}: {message}")]
///         Data { path: PathBuf, message: String },
///     }
/// }
///
/// let e: StageError = CoreError::io("x.csv", std::io::ErrorKind::NotFound.into()).into();
/// assert!(e.to_string().starts_with("x.csv: "));
/// ```
#[macro_export]
macro_rules! stage_error {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            upstream { $($upstream:ident($error:ty)),+ $(,)? }
            $($own:tt)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, thiserror::Error)]
        $vis enum $name {
            $(
                #[error(transparent)]
                $upstream(#[from] $error),
            )+
            $($own)*
        }
    };
}
