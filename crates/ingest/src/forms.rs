//! CSVs as spreadsheets and other tools save them: a byte-order mark (UTF-8 or UTF-16),
//! quoted cells, spaces around cells, `;` or tab between cells, old-Mac `\r` line ends,
//! blank lines at the end. Such a file is rewritten once, cell for cell and line for line,
//! into the plain form the fast reader takes (comma-separated UTF-8, `\n` line ends), in a
//! temporary directory; files already in that form (what this project and pandas write) are
//! read as they are. Errors name the original file and row.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use hits_core::CoreError;

use crate::IngestError;

/// How much of the start of a file decides whether it needs rewriting (the header and
/// the first rows), and of its end (blank lines).
const HEAD_BYTES: usize = 64 * 1024;
const TAIL_BYTES: u64 = 4 * 1024;

/// A CSV to read: the original, or its rewritten plain form.
pub(crate) struct PlainCsv {
    pub original: PathBuf,
    /// The rewritten file, in a directory removed when this is dropped.
    rewritten: Option<(tempfile::TempDir, PathBuf)>,
}

impl PlainCsv {
    /// The file the readers should open.
    pub fn path(&self) -> &Path {
        self.rewritten
            .as_ref()
            .map_or(self.original.as_path(), |(_, path)| path.as_path())
    }

    pub fn was_rewritten(&self) -> bool {
        self.rewritten.is_some()
    }

    /// `error` with the rewritten file's path (in its path and in its message) replaced by
    /// the original's.
    pub fn restore(&self, error: IngestError) -> IngestError {
        let Some((_, rewritten)) = &self.rewritten else {
            return error;
        };
        let fix_path = |path: PathBuf| {
            if path == *rewritten {
                self.original.clone()
            } else {
                path
            }
        };
        let (from, to) = (
            rewritten.display().to_string(),
            self.original.display().to_string(),
        );
        match error {
            IngestError::File { path, message } => IngestError::File {
                path: fix_path(path),
                message: message.replace(&from, &to),
            },
            IngestError::Core(CoreError::Cell {
                path,
                row,
                line,
                column,
                message,
            }) => CoreError::Cell {
                path: fix_path(path),
                row,
                line,
                column,
                message: message.replace(&from, &to),
            }
            .into(),
            other => other,
        }
    }
}

/// `path` as the fast reader can take it (see the module documentation).
pub(crate) fn plain(path: &Path) -> Result<PlainCsv, IngestError> {
    let original = path.to_path_buf();
    // A missing or unreadable file is reported by the reader, as for any other file.
    let Ok(mut file) = File::open(path) else {
        return Ok(PlainCsv {
            original,
            rewritten: None,
        });
    };
    let io = |e: std::io::Error| IngestError::file(path, e.to_string());
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut file)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .map_err(io)?;
    file.read_to_end(&mut tail).map_err(io)?;
    if !needs_rewriting(&head, &tail) {
        return Ok(PlainCsv {
            original,
            rewritten: None,
        });
    }
    let dir = tempfile::tempdir().map_err(io)?;
    let target = dir
        .path()
        .join(path.file_name().unwrap_or("file.csv".as_ref()));
    rewrite(path, &target)?;
    Ok(PlainCsv {
        original,
        rewritten: Some((dir, target)),
    })
}

/// The cells of the first line of `path` in its plain form (its header, or first row).
pub fn first_cells(path: &Path) -> Result<Vec<String>, IngestError> {
    let csv = plain(path)?;
    let line = crate::csv::first_line(csv.path()).map_err(|e| csv.restore(e))?;
    Ok(line.split(',').map(str::to_string).collect())
}

/// Whether a file whose first bytes are `head` and last bytes `tail` is in any other form
/// than comma-separated UTF-8 without quotes, padding or trailing blank lines.
fn needs_rewriting(head: &[u8], tail: &[u8]) -> bool {
    let bom = head.starts_with(b"\xef\xbb\xbf")
        || head.starts_with(b"\xff\xfe")
        || head.starts_with(b"\xfe\xff");
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let other_separator =
        !first_line.contains(&b',') && (first_line.contains(&b';') || first_line.contains(&b'\t'));
    let trailing_separator = head.windows(2).any(|w| matches!(w, [b',', b'\n' | b'\r']));
    let lone_cr = head.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n');
    let padded = head.windows(2).any(|w| {
        matches!(
            w,
            [b' ' | b'\t', b',' | b'\r' | b'\n'] | [b',' | b'\n', b' ' | b'\t']
        )
    }) || head.first().is_some_and(|b| *b == b' ' || *b == b'\t');
    let trailing_blank = {
        let end = tail
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        tail[end..].iter().filter(|&&b| b == b'\n').count() > 1
            || tail[end..].contains(&b'\r') && !tail[end..].ends_with(b"\r\n")
    };
    bom || other_separator
        || trailing_separator
        || lone_cr
        || padded
        || trailing_blank
        || head.contains(&b'"')
}

/// Rewrite `source` into `target` cell for cell, one record per line, blank lines dropped:
/// rows keep their numbers, and lines too where the original has no blank lines between rows.
fn rewrite(source: &Path, target: &Path) -> Result<(), IngestError> {
    let io = |e: std::io::Error| IngestError::file(source, e.to_string());
    let file = File::open(source).map_err(io)?;
    // UTF-16 (and UTF-8) byte-order marks decide the encoding; without one, UTF-8.
    let mut decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .bom_sniffing(true)
        .strip_bom(true)
        .build(std::io::BufReader::new(file));
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while decoded.read(&mut byte).map_err(io)? == 1 {
        first.push(byte[0]);
        if matches!(byte[0], b'\n' | b'\r') {
            break;
        }
    }
    let separator = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|s| first.iter().filter(|b| *b == s).count())
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(separator)
        .trim(csv::Trim::All)
        .from_reader(first.as_slice().chain(decoded));
    let mut out = BufWriter::new(File::create(target).map_err(io)?);
    // Whether the first record (the header) ends in an empty cell.
    let mut header_gap: Option<bool> = None;
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(IngestError::file(
                    source,
                    format!("not readable as CSV text: {e}"),
                ));
            }
        }
        // A line of spaces only is a blank line, not a record of one empty cell.
        if record.iter().all(<[u8]>::is_empty) {
            continue;
        }
        // Some tools end every line with a separator: an unnamed last header column whose
        // cells are all empty is no column.
        let header_gap = *header_gap
            .get_or_insert_with(|| record.iter().next_back().is_some_and(<[u8]>::is_empty));
        let cells = record.len()
            - usize::from(header_gap && record.iter().next_back().is_some_and(<[u8]>::is_empty));
        for (i, cell) in record.iter().take(cells).enumerate() {
            if i > 0 {
                out.write_all(b",").map_err(io)?;
            }
            write_cell(&mut out, cell).map_err(io)?;
        }
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(())
}

/// One cell, quoted (RFC 4180) only where it holds a comma, quote or line break.
fn write_cell(out: &mut impl Write, cell: &[u8]) -> std::io::Result<()> {
    if !cell
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        return out.write_all(cell);
    }
    out.write_all(b"\"")?;
    for &b in cell {
        if b == b'"' {
            out.write_all(b"\"")?;
        }
        out.write_all(&[b])?;
    }
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_files_are_read_as_they_are() {
        for text in [
            "id,p0\na,1.5\nb,-2e-3\n",
            "id,p0\r\na,1.5\r\nb,2\r\n",
            "id,p0\na,1\nb,2",
        ] {
            assert!(
                !needs_rewriting(text.as_bytes(), text.as_bytes()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn spreadsheet_forms_are_rewritten_to_the_plain_form() {
        let dir = tempfile::tempdir().unwrap();
        let plain_text = "id,p0,p1\na,1.5,2\nb,3,-4e-3\n";
        let utf16: Vec<u8> = b"\xff\xfe"
            .iter()
            .copied()
            .chain(
                "id;p0;p1\r\na;1.5;2\r\nb;3;-4e-3\r\n"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        let forms: Vec<(&str, Vec<u8>)> = vec![
            ("bom", format!("\u{feff}{plain_text}").into_bytes()),
            (
                "crlf bom",
                format!("\u{feff}{}", plain_text.replace('\n', "\r\n")).into_bytes(),
            ),
            (
                "quoted",
                b"\"id\",\"p0\",\"p1\"\n\"a\",\"1.5\",\"2\"\n\"b\",\"3\",\"-4e-3\"\n".to_vec(),
            ),
            ("padded", b"id, p0 , p1\n a ,1.5, 2\nb,3 ,-4e-3\n".to_vec()),
            ("semicolons", b"id;p0;p1\na;1.5;2\nb;3;-4e-3\n".to_vec()),
            ("tabs", b"id\tp0\tp1\na\t1.5\t2\nb\t3\t-4e-3\n".to_vec()),
            ("old mac", b"id,p0,p1\ra,1.5,2\rb,3,-4e-3\r".to_vec()),
            ("blank end", format!("{plain_text}\n\n  \n").into_bytes()),
            ("utf-16", utf16),
        ];
        for (name, bytes) in forms {
            let path = dir.path().join(format!("{}.csv", name.replace(' ', "_")));
            std::fs::write(&path, &bytes).unwrap();
            let csv = plain(&path).unwrap();
            assert!(csv.was_rewritten(), "{name}");
            let text = std::fs::read_to_string(csv.path()).unwrap();
            assert_eq!(text, plain_text, "{name}");
        }
    }

    #[test]
    fn errors_in_rewritten_files_name_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("template.csv");
        std::fs::write(&path, "\"id\",\"p0\"\n\n\"a\",\"1\"\n").unwrap();
        let csv = plain(&path).unwrap();
        assert_eq!(std::fs::read_to_string(csv.path()).unwrap(), "id,p0\na,1\n");
        let error = csv.restore(IngestError::file(
            csv.path(),
            format!("differs from {}", csv.path().display()),
        ));
        assert_eq!(
            error.to_string(),
            format!("{}: differs from {}", path.display(), path.display())
        );
    }
}
