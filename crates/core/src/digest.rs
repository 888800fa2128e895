//! File digests: a file's BLAKE3 hash and size, taken while it is read or written
//! ([`Hashed`]) or by reading it whole ([`FileDigest::of`]). The bottom of the crate's file
//! handling: it uses nothing of the crate but its error type.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A file and the BLAKE3 hash of its contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub path: PathBuf,
    pub blake3: String,
    pub bytes: u64,
}

impl FileDigest {
    /// A file whose BLAKE3 hash is already known: only its size is read.
    pub fn with_hash(path: &Path, blake3: String) -> Result<Self, CoreError> {
        let bytes = std::fs::metadata(path)
            .map_err(|e| CoreError::io(path, e))?
            .len();
        Ok(FileDigest {
            path: path.to_path_buf(),
            blake3,
            bytes,
        })
    }

    /// Read and hash the whole file.
    pub fn of(path: &Path) -> Result<Self, CoreError> {
        // Inputs run to gigabytes: read 1 MiB at a time, each hashed on every core. The
        // buffer stays in the cache; a larger one costs more in page faults than it saves.
        // (Memory-mapping the file instead would count every page of it in the stage's
        // resident memory.)
        let file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
        let mut reader = Hashed::new(file);
        let mut buffer = vec![0u8; 1 << 20];
        while reader
            .read(&mut buffer)
            .map_err(|e| CoreError::io(path, e))?
            > 0
        {}
        Ok(reader.digest(path))
    }
}

/// A reader or writer that hashes every byte passing through it, so a stage gets the BLAKE3
/// of a file it reads or writes whole without reading the file a second time.
pub struct Hashed<T> {
    inner: T,
    hasher: blake3::Hasher,
}

impl<T> Hashed<T> {
    pub fn new(inner: T) -> Self {
        Hashed {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }

    /// The digest of the bytes read or written so far: `path`'s digest once all of it passed.
    pub fn digest(&self, path: &Path) -> FileDigest {
        FileDigest {
            path: path.to_path_buf(),
            blake3: self.hasher.finalize().to_hex().to_string(),
            bytes: self.hasher.count(),
        }
    }

    fn hash(&mut self, bytes: &[u8]) {
        // Below ~128 KiB, splitting the work across threads costs more than it saves.
        if bytes.len() >= 1 << 17 {
            self.hasher.update_rayon(bytes);
        } else {
            self.hasher.update(bytes);
        }
    }
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hash(&buf[..read]);
        Ok(read)
    }
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hash(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
