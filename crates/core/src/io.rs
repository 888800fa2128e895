//! Atomic artifact writes and file hashing.
//!
//! Every artifact is written to a temporary file in its final directory and renamed into place
//! only once it is complete, so an error, a panic or a `kill -9` leaves either the previous
//! artifact or nothing — never half a file.
//!
//! Files are not fsynced: that cost more than half of ingest's time on the default set, and
//! only matters if the machine itself goes down. Then a file may come back empty or stale,
//! and the manifests catch it: every stage records the BLAKE3 of its outputs, reruns when they
//! differ, and its consumers refuse them, naming the stage to rerun.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::CoreError;
use crate::digest::{FileDigest, Hashed};

/// A new temporary file beside `path` (in its directory, created if missing), named
/// `.<file name>.<random><suffix>` and readable by all: where an artifact is written before
/// it is renamed into place. Errors name the directory.
pub fn temp_file_beside(path: &Path, suffix: &str) -> Result<tempfile::NamedTempFile, CoreError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(suffix)
        .permissions(artifact_permissions())
        .tempfile_in(dir)
        .map_err(|e| CoreError::io(dir, e))
}

/// A new version of `path` being written under a temporary name in the same directory.
/// [`commit`](Self::commit) renames it over `path`; dropping it instead deletes it, leaving
/// any previous `path` untouched.
pub struct PendingFile {
    path: PathBuf,
    temp: tempfile::TempPath,
    writer: BufWriter<Hashed<File>>,
}

impl PendingFile {
    pub fn create(path: &Path) -> Result<Self, CoreError> {
        let (file, temp) = temp_file_beside(path, ".tmp")?.into_parts();
        Ok(PendingFile {
            path: path.to_path_buf(),
            temp,
            writer: BufWriter::new(Hashed::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn writer(&mut self) -> &mut BufWriter<Hashed<File>> {
        &mut self.writer
    }

    /// Flush the file and rename it over `path`; returns its digest, taken while writing.
    pub fn commit(self) -> Result<FileDigest, CoreError> {
        let path = self.path;
        let file = self
            .writer
            .into_inner()
            .map_err(|e| CoreError::io(&path, e.into_error()))?;
        self.temp
            .persist(&path)
            .map_err(|e| CoreError::io(&path, e.error))?;
        Ok(file.digest(&path))
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// Write `path` atomically. `write` fills a buffered temporary file in the same directory;
/// the file is renamed over `path` only if `write` returns `Ok`. Returns its digest.
pub fn write_atomic<E>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<Hashed<File>>) -> Result<(), E>,
) -> Result<FileDigest, E>
where
    E: From<CoreError>,
{
    let mut pending = PendingFile::create(path)?;
    write(pending.writer())?;
    Ok(pending.commit()?)
}

/// Permissions of every artifact: readable by all (temporary files are created owner-only).
pub fn artifact_permissions() -> std::fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(0o644)
}

/// Write a whole byte string atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), CoreError> {
    write_atomic(path, |w| {
        w.write_all(bytes).map_err(|e| CoreError::io(path, e))
    })
    .map(drop)
}

/// Write a value as pretty JSON atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), CoreError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| CoreError::io(path, e.into()))?;
    text.push('\n');
    write_bytes_atomic(path, text.as_bytes())
}

/// Read and parse a JSON file, naming the file in any error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| CoreError::io(path, e.into()))
}

/// BLAKE3 digest of a file's contents, as lowercase hex.
pub fn hash_file(path: &Path) -> Result<String, CoreError> {
    Ok(FileDigest::of(path)?.blake3)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn failed_write_leaves_previous_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_bytes_atomic(&path, b"old").unwrap();
        let result: Result<FileDigest, CoreError> = write_atomic(&path, |w| {
            w.write_all(b"half of the new").unwrap();
            Err(CoreError::io(&path, std::io::Error::other("disk on fire")))
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temporary file left behind: {names:?}");
    }

    #[test]
    fn digests_taken_while_reading_and_writing_match_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        // Large enough for the multi-threaded hashing path, and not a multiple of a chunk.
        let bytes: Vec<u8> = (0..(1u32 << 18) + 12_345)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut pending = PendingFile::create(&path).unwrap();
        pending.write_all(&bytes[..100]).unwrap();
        pending.write_all(&bytes[100..]).unwrap();
        let written = pending.commit().unwrap();
        let expected = FileDigest::of(&path).unwrap();
        // Independent of `Hashed`, which `FileDigest::of` uses too: the bytes hashed at once.
        assert_eq!(expected.blake3, blake3::hash(&bytes).to_hex().to_string());
        assert_eq!(written, expected);
        assert_eq!(written.bytes, bytes.len() as u64);

        let mut reader = Hashed::new(File::open(&path).unwrap());
        let mut chunk = vec![0u8; 1000];
        while reader.read(&mut chunk).unwrap() > 0 {}
        assert_eq!(reader.digest(&path), expected);
        let mut partial = Hashed::new(File::open(&path).unwrap());
        partial.read_exact(&mut chunk).unwrap();
        assert_ne!(
            partial.digest(&path),
            expected,
            "a partly read file has another digest"
        );
    }

    #[test]
    fn hash_changes_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        write_bytes_atomic(&path, b"one").unwrap();
        let first = hash_file(&path).unwrap();
        write_bytes_atomic(&path, b"two").unwrap();
        assert_ne!(first, hash_file(&path).unwrap());
    }
}
