//! Stage manifests: what a stage read and wrote, with content hashes.
//!
//! Each stage writes `<artifacts>/<stage>/manifest.json` last. A later stage checks its input
//! against the producer's manifest, so a file changed or truncated since it was written is
//! refused instead of silently used.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::config::Stage;
use crate::digest::FileDigest;
use crate::io::{read_json, write_json_atomic};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub stage: Stage,
    pub crate_version: String,
    pub pipeline: String,
    /// BLAKE3 of the configuration the stage reads ([`crate::Pipeline::stage_config_hash`]).
    pub config_hash: String,
    pub inputs: Vec<FileDigest>,
    pub outputs: Vec<FileDigest>,
    /// Wall seconds from the start of the stage's process to writing this manifest.
    #[serde(default)]
    pub seconds: f64,
    /// The program that ran the stage: a rebuilt binary (changed code) is never skipped.
    #[serde(default)]
    pub program: Option<Program>,
}

/// A program's path, size and modification time: cheap to read, and changed by every rebuild
/// (hashing a 300 MB binary on every run would cost more than some stages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    pub path: PathBuf,
    pub bytes: u64,
    pub modified_unix_nanos: u128,
}

impl Program {
    /// The running executable, if the platform can tell.
    pub fn current() -> Option<Self> {
        let path = std::env::current_exe().ok()?;
        let metadata = std::fs::metadata(&path).ok()?;
        let modified = metadata
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(Program {
            path,
            bytes: metadata.len(),
            modified_unix_nanos: modified.as_nanos(),
        })
    }
}

impl Manifest {
    pub const FILE_NAME: &'static str = "manifest.json";

    pub fn new(stage: Stage, crate_version: &str, pipeline: &crate::Pipeline) -> Self {
        Manifest {
            stage,
            crate_version: crate_version.to_string(),
            pipeline: pipeline.name.clone(),
            config_hash: pipeline.stage_config_hash(stage),
            inputs: Vec::new(),
            outputs: Vec::new(),
            seconds: 0.0,
            program: Program::current(),
        }
    }

    pub fn add_input(&mut self, path: &Path) -> Result<(), CoreError> {
        self.inputs.push(FileDigest::of(path)?);
        Ok(())
    }

    /// An input whose digest is already known, e.g. from [`Manifest::verify_output`] of the
    /// stage that wrote it: large inputs are then hashed once, not twice.
    pub fn add_input_digest(&mut self, digest: FileDigest) {
        self.inputs.push(digest);
    }

    /// Add `paths` as inputs, taking the digest of any already hashed file from `known`
    /// (e.g. a features file verified when it was opened) instead of hashing it again.
    pub fn add_inputs(&mut self, paths: &[PathBuf], known: &[FileDigest]) -> Result<(), CoreError> {
        for path in paths {
            match known.iter().find(|digest| &digest.path == path) {
                Some(digest) => self.add_input_digest(digest.clone()),
                None => self.add_input(path)?,
            }
        }
        Ok(())
    }

    pub fn add_output(&mut self, path: &Path) -> Result<(), CoreError> {
        self.outputs.push(FileDigest::of(path)?);
        Ok(())
    }

    /// An output whose digest was taken while writing it ([`crate::io::PendingFile::commit`]).
    pub fn add_output_digest(&mut self, digest: FileDigest) {
        self.outputs.push(digest);
    }

    /// Write `<stage_dir>/manifest.json`, recording `seconds`, the stage's wall time so far
    /// (a stage binary passes [`crate::stage::elapsed_seconds`]).
    pub fn write(&self, stage_dir: &Path, seconds: f64) -> Result<PathBuf, CoreError> {
        let path = stage_dir.join(Self::FILE_NAME);
        let timed = Manifest {
            seconds,
            ..self.clone()
        };
        write_json_atomic(&path, &timed)?;
        Ok(path)
    }

    pub fn read(stage_dir: &Path) -> Result<Self, CoreError> {
        let path = stage_dir.join(Self::FILE_NAME);
        if !path.exists() {
            return Err(CoreError::Manifest {
                path,
                message: "missing: run the stage that writes this directory first".into(),
            });
        }
        read_json(&path)
    }

    /// Refuse `path` unless it is one of this manifest's outputs with unchanged contents.
    pub fn verify_output(&self, path: &Path) -> Result<FileDigest, CoreError> {
        let stale = |message: String| CoreError::Manifest {
            path: path.to_path_buf(),
            message,
        };
        let recorded = self
            .outputs
            .iter()
            .find(|d| d.path == path)
            .ok_or_else(|| {
                stale(format!(
                    "not listed in the {} manifest: re-run `just {}`",
                    self.stage, self.stage
                ))
            })?;
        let actual = FileDigest::of(path)?;
        if actual.blake3 != recorded.blake3 {
            return Err(stale(format!(
                "changed or corrupt since the {} stage wrote it (hash differs from its manifest): re-run `just {}`",
                self.stage, self.stage
            )));
        }
        Ok(actual)
    }

    /// True when a stage that ran with the same configuration on these inputs can be skipped.
    pub fn is_up_to_date(&self, pipeline: &crate::Pipeline, inputs: &[PathBuf]) -> bool {
        self.config_hash == pipeline.stage_config_hash(self.stage)
            && self.program.is_some()
            && self.program == Program::current()
            && self.inputs.len() == inputs.len()
            && inputs.iter().all(|p| {
                self.inputs.iter().any(|d| {
                    d.path == *p && FileDigest::of(p).is_ok_and(|now| now.blake3 == d.blake3)
                })
            })
            && self
                .outputs
                .iter()
                .all(|d| FileDigest::of(&d.path).is_ok_and(|now| now.blake3 == d.blake3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::write_bytes_atomic;

    #[test]
    fn verify_output_refuses_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("train.arrow");
        write_bytes_atomic(&out, b"arrow bytes").unwrap();
        let pipeline = crate::Pipeline::default();
        let mut manifest = Manifest::new(Stage::Ingest, "0.1.0", &pipeline);
        manifest.add_output(&out).unwrap();
        manifest.write(dir.path(), 0.0).unwrap();
        let manifest = Manifest::read(dir.path()).unwrap();
        manifest.verify_output(&out).unwrap();
        write_bytes_atomic(&out, b"arrow byte").unwrap();
        let err = manifest.verify_output(&out).unwrap_err().to_string();
        assert!(err.contains("changed or corrupt"), "{err}");
    }
}
