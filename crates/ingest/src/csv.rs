//! Reading CSVs with polars, and pinpointing the first bad cell when polars finds one.
//!
//! Channel files are read in chunks of rows ([`ChunkedCsv`]), labels files whole. polars
//! parses each with a fixed schema and `ignore_errors`, so a bad cell becomes a null instead
//! of aborting the read. Only when something is wrong (a null, a non-finite value, or a
//! polars error) is the file scanned line by line to name the exact row, column and text.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use hits_core::config::{DataConfig, Layout};
use hits_core::digest::FileDigest;
use hits_core::digest::Hashed;
use hits_core::{CoreError, STAMP_PIXELS};
use polars::prelude::*;

use crate::IngestError;

/// What a CSV column must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// A non-empty candidate id.
    Id,
    /// A finite number.
    Pixel,
    /// 0 (bogus) or 1 (real).
    Label,
}

/// The expected columns of a file: names (as in its header, or generated) and kinds.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    pub names: Vec<String>,
    pub kinds: Vec<ColumnKind>,
    pub has_header: bool,
}

impl Columns {
    /// Columns of a channel file in `data.layout`, checked against the file's first line.
    pub fn channel(path: &Path, data: &DataConfig) -> Result<Self, IngestError> {
        let (layout, id_column, plain_header) = (data.layout, data.id_column.as_str(), data.header);
        let first = first_line(path)?;
        let fields: Vec<&str> = first.split(',').collect();
        match layout {
            Layout::IdHeader => {
                if fields[0] != id_column {
                    return Err(IngestError::file(
                        path,
                        format!(
                            "first header column is '{}', expected the id column '{id_column}' (layout id_header)",
                            fields[0]
                        ),
                    ));
                }
                let pixels = fields.len() - 1;
                if pixels != STAMP_PIXELS {
                    return Err(IngestError::file(
                        path,
                        format!(
                            "header has {pixels} pixel columns after '{id_column}', expected {STAMP_PIXELS} (21x21)"
                        ),
                    ));
                }
                let mut kinds = vec![ColumnKind::Id];
                kinds.extend([ColumnKind::Pixel; STAMP_PIXELS]);
                Ok(Columns {
                    names: unique_names(path, &fields)?,
                    kinds,
                    has_header: true,
                })
            }
            Layout::Plain => {
                if fields.len() != STAMP_PIXELS {
                    let what = if plain_header { "header" } else { "row 1" };
                    return Err(IngestError::file(
                        path,
                        format!(
                            "{what} has {} columns, expected {STAMP_PIXELS} (21x21 pixels, layout plain)",
                            fields.len()
                        ),
                    ));
                }
                let names = if plain_header {
                    unique_names(path, &fields)?
                } else {
                    (0..STAMP_PIXELS).map(|i| format!("p{i}")).collect()
                };
                Ok(Columns {
                    names,
                    kinds: vec![ColumnKind::Pixel; STAMP_PIXELS],
                    has_header: plain_header,
                })
            }
        }
    }

    /// Columns of a labels file in `data.layout`.
    pub fn labels(path: &Path, data: &DataConfig) -> Result<Self, IngestError> {
        let (layout, id_column, plain_header) = (data.layout, data.id_column.as_str(), data.header);
        let first = first_line(path)?;
        match layout {
            Layout::IdHeader => {
                let expected = format!("{id_column},label");
                if first != expected {
                    return Err(IngestError::file(
                        path,
                        format!("header is '{first}', expected '{expected}'"),
                    ));
                }
                Ok(Columns {
                    names: vec![id_column.to_string(), "label".into()],
                    kinds: vec![ColumnKind::Id, ColumnKind::Label],
                    has_header: true,
                })
            }
            Layout::Plain => Ok(Columns {
                names: vec![if plain_header {
                    first.clone()
                } else {
                    "label".into()
                }],
                kinds: vec![ColumnKind::Label],
                has_header: plain_header,
            }),
        }
    }

    /// polars options for these columns: a fixed schema, and `ignore_errors` so that a bad
    /// cell becomes a null for the cell checks to find instead of aborting the read.
    fn read_options(&self, has_header: bool) -> CsvReadOptions {
        CsvReadOptions::default()
            .with_has_header(has_header)
            .with_schema(Some(Arc::new(self.polars_schema())))
            .with_ignore_errors(true)
            .with_rechunk(true)
            .with_raise_if_empty(false)
    }

    fn polars_schema(&self) -> Schema {
        self.names
            .iter()
            .zip(&self.kinds)
            .map(|(name, kind)| {
                let dtype = match kind {
                    ColumnKind::Id => DataType::String,
                    ColumnKind::Pixel => DataType::Float32,
                    ColumnKind::Label => DataType::Int64,
                };
                Field::new(name.as_str().into(), dtype)
            })
            .collect()
    }
}

fn unique_names(path: &Path, fields: &[&str]) -> Result<Vec<String>, IngestError> {
    let mut seen = std::collections::HashSet::new();
    for (i, name) in fields.iter().enumerate() {
        if !seen.insert(*name) {
            return Err(IngestError::file(
                path,
                format!("header column {} '{name}' appears twice", i + 1),
            ));
        }
    }
    Ok(fields.iter().map(|s| s.to_string()).collect())
}

/// The first line of a file, after checking it exists and is not empty.
pub(crate) fn first_line(path: &Path) -> Result<String, IngestError> {
    let file = File::open(path).map_err(|e| {
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            "file not found".to_string()
        } else {
            e.to_string()
        };
        IngestError::file(path, message)
    })?;
    let mut line = String::new();
    BufReader::new(file)
        .read_line(&mut line)
        .map_err(|e| IngestError::file(path, e.to_string()))?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    if line.is_empty() {
        return Err(IngestError::file(path, "file is empty"));
    }
    Ok(line)
}

/// Read all of `path` with polars (a labels file: a few bytes per candidate). Returns a
/// single-chunk frame with one row per candidate.
pub(crate) fn read_frame(path: &Path, columns: &Columns) -> Result<DataFrame, IngestError> {
    let frame = parse(path, columns, || {
        columns
            .read_options(columns.has_header)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|reader| reader.finish())
    })?;
    if frame.height() == 0 {
        return Err(IngestError::file(
            path,
            "has a header but no candidate rows",
        ));
    }
    Ok(frame)
}

/// Run a polars read, turning a polars error or panic into an error naming the first bad row
/// and column (found by scanning the file), or polars' own message as the fallback.
fn parse(
    path: &Path,
    columns: &Columns,
    read: impl FnOnce() -> PolarsResult<DataFrame>,
) -> Result<DataFrame, IngestError> {
    let frame =
        hits_core::decoder::catch_panic(|| read().map_err(|e| one_line(&e))).and_then(|r| r);
    frame.map_err(|message| {
        locate_problem(path, columns).unwrap_or_else(|| IngestError::file(path, message))
    })
}

/// A channel CSV read in chunks of rows, each parsed by polars on its own, so memory is
/// bounded by the chunk whatever the length of the file. The file is hashed as it is read.
pub(crate) struct ChunkedCsv<'a> {
    pub path: &'a Path,
    pub columns: &'a Columns,
    reader: BufReader<Source>,
    /// Data rows handed out so far.
    rows: usize,
    text: Vec<u8>,
}

/// A channel file, hashed as it is read or not.
enum Source {
    Hashed(Box<Hashed<File>>),
    Plain(File),
}

impl std::io::Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::Hashed(file) => file.read(buf),
            Source::Plain(file) => file.read(buf),
        }
    }
}

/// One chunk of a CSV: its rows as a frame, and the index of its first row in the file.
pub(crate) struct Chunk {
    pub frame: DataFrame,
    pub first_row: usize,
}

impl<'a> ChunkedCsv<'a> {
    /// `hash`: take the file's digest while reading it.
    pub fn open(path: &'a Path, columns: &'a Columns, hash: bool) -> Result<Self, IngestError> {
        let file = File::open(path).map_err(|e| IngestError::file(path, e.to_string()))?;
        let source = if hash {
            Source::Hashed(Box::new(Hashed::new(file)))
        } else {
            Source::Plain(file)
        };
        let mut csv = ChunkedCsv {
            path,
            columns,
            reader: BufReader::with_capacity(1 << 20, source),
            rows: 0,
            text: Vec::new(),
        };
        if columns.has_header {
            csv.read_records(1)?;
        }
        Ok(csv)
    }

    /// Append up to `max` whole records (a quoted field may hold a newline) to `self.text`;
    /// returns how many were read.
    fn read_records(&mut self, max: usize) -> Result<usize, IngestError> {
        let mut records = 0;
        let mut open_quotes = false;
        while records < max {
            let start = self.text.len();
            let read = self
                .reader
                .read_until(b'\n', &mut self.text)
                .map_err(|e| IngestError::file(self.path, e.to_string()))?;
            if read == 0 {
                // A last line without a newline was counted when it was read.
                break;
            }
            let quotes = memchr::memchr_iter(b'"', &self.text[start..]).count();
            open_quotes ^= quotes % 2 == 1;
            let blank = self.text[start..].iter().all(u8::is_ascii_whitespace);
            if blank && !open_quotes {
                self.text.truncate(start); // polars skips blank lines too
            } else if !open_quotes {
                records += 1;
            }
        }
        Ok(records)
    }

    /// The next chunk of at most `max_rows` rows, or `None` at the end of the file.
    pub fn next_chunk(&mut self, max_rows: usize) -> Result<Option<Chunk>, IngestError> {
        self.text.clear();
        let records = self.read_records(max_rows)?;
        if records == 0 {
            return Ok(None);
        }
        let text = std::mem::take(&mut self.text);
        let frame = parse(self.path, self.columns, || {
            self.columns
                .read_options(false)
                // The four channel files are parsed in parallel, one thread each.
                .with_n_threads(Some(1))
                .into_reader_with_file_handle(std::io::Cursor::new(text))
                .finish()
        })?;
        if frame.height() != records {
            // polars read the text differently from our record split (stray quotes, ...).
            return Err(locate_problem(self.path, self.columns).unwrap_or_else(|| {
                IngestError::file(
                    self.path,
                    format!(
                        "rows {}..{}: {records} records but polars read {}",
                        self.rows + 1,
                        self.rows + records,
                        frame.height()
                    ),
                )
            }));
        }
        let chunk = Chunk {
            frame,
            first_row: self.rows,
        };
        self.rows += records;
        Ok(Some(chunk))
    }

    /// The file's digest, once [`next_chunk`](Self::next_chunk) has returned `None`, if it
    /// was opened to take it.
    pub fn digest(&self) -> Option<FileDigest> {
        match self.reader.get_ref() {
            Source::Hashed(file) => Some(file.digest(self.path)),
            Source::Plain(_) => None,
        }
    }

    /// Data rows in the whole file (reads what is left of it without parsing).
    pub fn count_rows(mut self) -> Result<usize, IngestError> {
        loop {
            self.text.clear();
            match self.read_records(1 << 16)? {
                0 => return Ok(self.rows),
                n => self.rows += n,
            }
        }
    }
}

/// The text of column `index` at data row `row` (from 0) of `path`, for error messages about
/// an earlier row (the streaming checks keep digests, not ids); empty if unreadable.
pub(crate) fn field_at(path: &Path, has_header: bool, row: usize, index: usize) -> String {
    File::open(path)
        .ok()
        .and_then(|file| {
            BufReader::new(file)
                .lines()
                .nth(row + usize::from(has_header))?
                .ok()
        })
        .and_then(|line| {
            line.split(',')
                .nth(index)
                .map(|f| f.trim_matches('"').to_string())
        })
        .unwrap_or_default()
}

/// polars messages can span lines; an error here is always one line.
fn one_line(error: &PolarsError) -> String {
    error
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Column `index` of `frame` read as `T` and converted value by value by `accept`; the first
/// value it rejects (a null, or out of range) is reported with its row, column and text.
fn convert_column<T: PolarsPhysicalType, R>(
    path: &Path,
    chunk: &Chunk,
    columns: &Columns,
    index: usize,
    accept: impl Fn(Option<T::Physical<'_>>) -> Option<R>,
) -> Result<Vec<R>, IngestError> {
    let values = chunk
        .frame
        .column(columns.names[index].as_str())
        .and_then(|column| column.as_materialized_series().unpack::<T>())
        .map_err(|e| IngestError::file(path, one_line(&e)))?;
    values
        .iter()
        .enumerate()
        .map(|(row, value)| {
            accept(value).ok_or_else(|| cell_problem(path, columns, chunk.first_row + row, index))
        })
        .collect()
}

/// Pixel column `index`: finite numbers.
pub(crate) fn pixel_column<'c>(
    path: &Path,
    chunk: &'c Chunk,
    columns: &Columns,
    index: usize,
) -> Result<Cow<'c, [f32]>, IngestError> {
    // The common case, a whole column of finite numbers, is polars' own slice: no copy and
    // no per-cell `Option`. Anything else goes cell by cell to find and name the bad cell.
    let values = chunk
        .frame
        .column(columns.names[index].as_str())
        .ok()
        .and_then(|column| {
            column
                .as_materialized_series()
                .f32()
                .ok()?
                .cont_slice()
                .ok()
        });
    if let Some(values) = values.filter(|v| v.iter().all(|v| v.is_finite())) {
        return Ok(Cow::Borrowed(values));
    }
    convert_column::<Float32Type, _>(path, chunk, columns, index, |v| v.filter(|v| v.is_finite()))
        .map(Cow::Owned)
}

/// Id column `index`: non-empty text.
pub(crate) fn id_column(
    path: &Path,
    chunk: &Chunk,
    columns: &Columns,
    index: usize,
) -> Result<Vec<String>, IngestError> {
    convert_column::<StringType, _>(path, chunk, columns, index, |v| {
        v.filter(|id| !id.is_empty()).map(str::to_string)
    })
}

/// Label column `index`: 0 or 1.
pub(crate) fn label_column(
    path: &Path,
    chunk: &Chunk,
    columns: &Columns,
    index: usize,
) -> Result<Vec<u8>, IngestError> {
    convert_column::<Int64Type, _>(path, chunk, columns, index, |v| {
        v.and_then(|l| u8::try_from(l).ok()).filter(|l| *l <= 1)
    })
}

/// The error for a cell polars could not give us: scan the file to say exactly what is there.
fn cell_problem(path: &Path, columns: &Columns, row: usize, index: usize) -> IngestError {
    locate_problem(path, columns).unwrap_or_else(|| {
        CoreError::Cell {
            path: path.to_path_buf(),
            row: row + 1,
            line: row + 1 + usize::from(columns.has_header),
            column: columns.names[index].clone(),
            message: "unreadable value".into(),
        }
        .into()
    })
}

/// Scan the file line by line for the first row that is ragged or has a bad cell.
fn locate_problem(path: &Path, columns: &Columns) -> Option<IngestError> {
    let reader = BufReader::new(File::open(path).ok()?);
    let skip = usize::from(columns.has_header);
    for (index, line) in reader.lines().enumerate().skip(skip) {
        let row = index + 1 - skip;
        let line_number = index + 1;
        let Ok(line) = line else {
            return Some(IngestError::file(
                path,
                format!("line {line_number} is not valid UTF-8 text"),
            ));
        };
        let line = line.trim_end_matches('\r');
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != columns.kinds.len() {
            return Some(IngestError::file(
                path,
                format!(
                    "row {row} (line {line_number}) has {} columns, expected {}",
                    fields.len(),
                    columns.kinds.len()
                ),
            ));
        }
        for (col, (field, kind)) in fields.iter().zip(&columns.kinds).enumerate() {
            if let Some(message) = cell_message(field, *kind) {
                return Some(
                    CoreError::Cell {
                        path: path.to_path_buf(),
                        row,
                        line: line_number,
                        column: columns.names[col].clone(),
                        message,
                    }
                    .into(),
                );
            }
        }
    }
    None
}

/// What is wrong with one cell's text, if anything.
fn cell_message(field: &str, kind: ColumnKind) -> Option<String> {
    if field.is_empty() {
        return Some(match kind {
            ColumnKind::Id => "empty id".into(),
            _ => "empty cell (missing value)".into(),
        });
    }
    match kind {
        ColumnKind::Id => None,
        ColumnKind::Pixel => match field.parse::<f32>() {
            Err(_) => Some(format!("non-numeric value {field:?}")),
            Ok(v) if v.is_nan() => Some("NaN (missing value)".into()),
            Ok(v) if v.is_infinite() => Some(format!("infinite value {field:?}")),
            Ok(_) => None,
        },
        ColumnKind::Label => match field {
            "0" | "1" => None,
            other => Some(format!(
                "{other:?} is not a label (expected 0 = bogus or 1 = real)"
            )),
        },
    }
}
