//! Arrow IPC files shared by the stages: atomic writing, reading with errors that name the
//! file, and typed access to the columns every artifact uses (`id`, `label`, fixed-size
//! `Float32` lists of pixels).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, FixedSizeListArray, Float32Array, RecordBatch, StringArray, UInt8Array,
};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;

use crate::CoreError;
use crate::digest::FileDigest;
use crate::io::PendingFile;

/// Rows per record batch in every Arrow file the pipeline writes.
pub const BATCH_ROWS: usize = 4096;

fn arrow_error(path: &Path, message: impl std::fmt::Display) -> CoreError {
    CoreError::Arrow {
        path: path.to_path_buf(),
        message: message.to_string().replace('\n', " "),
    }
}

/// The `id` column: one non-null UTF-8 candidate id per row.
pub fn id_field() -> Field {
    Field::new("id", DataType::Utf8, false)
}

/// The `label` column: 1 = real, 0 = bogus, null for an unlabelled split.
pub fn label_field() -> Field {
    Field::new("label", DataType::UInt8, true)
}

/// A column of `size` Float32 values per row (a stamp channel, or a whole stamp).
pub fn f32_list_field(name: &str, size: usize) -> Field {
    Field::new(name, f32_list_type(size), false)
}

fn f32_list_type(size: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, false)),
        size as i32,
    )
}

/// Build a fixed-size list column from row-major values (`values.len()` a multiple of `size`).
pub fn f32_list_array(values: Vec<f32>, size: usize) -> FixedSizeListArray {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    FixedSizeListArray::new(
        item,
        size as i32,
        Arc::new(Float32Array::from(values)),
        None,
    )
}

/// An Arrow IPC file written batch by batch to a temporary file; [`finish`](Self::finish)
/// completes it as a [`PendingFile`] to commit, so several files can be committed together.
pub struct IpcWriter {
    inner: FileWriter<PendingFile>,
}

impl IpcWriter {
    pub fn create(path: &Path, schema: &Schema) -> Result<Self, CoreError> {
        let pending = PendingFile::create(path)?;
        let inner = FileWriter::try_new(pending, schema).map_err(|e| arrow_error(path, e))?;
        Ok(IpcWriter { inner })
    }

    fn path(&self) -> PathBuf {
        self.inner.get_ref().path().to_path_buf()
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), CoreError> {
        self.inner
            .write(batch)
            .map_err(|e| arrow_error(&self.path(), e))
    }

    /// Write the footer; the file is complete but not yet in place.
    pub fn finish(mut self) -> Result<PendingFile, CoreError> {
        let path = self.path();
        self.inner.finish().map_err(|e| arrow_error(&path, e))?;
        self.inner.into_inner().map_err(|e| arrow_error(&path, e))
    }
}

/// Write record batches to `path` as an Arrow IPC file, atomically: the first failing batch
/// aborts the write and leaves any previous file in place. Returns the file's digest.
pub fn write_ipc<E: From<CoreError>>(
    path: &Path,
    schema: SchemaRef,
    batches: impl IntoIterator<Item = Result<RecordBatch, E>>,
) -> Result<FileDigest, E> {
    let mut writer = IpcWriter::create(path, &schema)?;
    for batch in batches {
        writer.write(&batch?)?;
    }
    Ok(writer.finish()?.commit()?)
}

/// An Arrow IPC file read batch by batch; every error names the file.
pub struct IpcReader {
    path: PathBuf,
    inner: FileReader<BufReader<File>>,
}

impl IpcReader {
    pub fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Iterator for IpcReader {
    type Item = Result<RecordBatch, CoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let unreadable = |e: &dyn std::fmt::Display| {
            arrow_error(
                &self.path,
                format!("unreadable record batch (truncated or corrupt?): {e}"),
            )
        };
        match crate::decoder::catch_panic(|| self.inner.next()) {
            Ok(next) => next.map(|batch| batch.map_err(|e| unreadable(&e))),
            Err(panic) => Some(Err(unreadable(&panic))),
        }
    }
}

/// Open an Arrow IPC file for reading batch by batch.
pub fn open_ipc(path: &Path) -> Result<IpcReader, CoreError> {
    let file = File::open(path).map_err(|e| CoreError::io(path, e))?;
    let not_readable = |e: &dyn std::fmt::Display| {
        arrow_error(
            path,
            format!("not a readable Arrow IPC file (truncated or corrupt?): {e}"),
        )
    };
    let inner = crate::decoder::catch_panic(|| FileReader::try_new_buffered(file, None))
        .map_err(|panic| not_readable(&panic))?
        .map_err(|e| not_readable(&e))?;
    Ok(IpcReader {
        path: path.to_path_buf(),
        inner,
    })
}

/// Read every batch of an Arrow IPC file.
pub fn read_ipc(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), CoreError> {
    let reader = open_ipc(path)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

/// Check that `schema` has `field`'s name with `field`'s type, naming the file otherwise.
pub fn expect_field(path: &Path, schema: &Schema, field: &Field) -> Result<(), CoreError> {
    let found = schema.field_with_name(field.name()).map_err(|_| {
        arrow_error(
            path,
            format!(
                "has no column '{}' (wrong schema: is this the right artifact?)",
                field.name()
            ),
        )
    })?;
    if found.data_type() != field.data_type() {
        return Err(arrow_error(
            path,
            format!(
                "column '{}' is {}, expected {}",
                field.name(),
                found.data_type(),
                field.data_type()
            ),
        ));
    }
    Ok(())
}

/// The row-major values of fixed-size list column `name` in `batch` (schema already checked).
pub fn f32_list_values<'a>(
    path: &Path,
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a [f32], CoreError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| arrow_error(path, format!("has no column '{name}'")))?;
    let list = column
        .as_fixed_size_list_opt()
        .ok_or_else(|| arrow_error(path, format!("column '{name}' is not a fixed-size list")))?;
    if list.null_count() > 0 {
        return Err(arrow_error(path, format!("column '{name}' has null rows")));
    }
    let size = list.value_length() as usize;
    let values = list
        .values()
        .as_primitive_opt::<Float32Type>()
        .ok_or_else(|| {
            arrow_error(
                path,
                format!("column '{name}' does not hold Float32 values"),
            )
        })?;
    let start = list.offset() * size;
    Ok(&values.values()[start..start + list.len() * size])
}

/// Where one record batch keeps the values of a fixed-size `Float32` list column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListExtent {
    /// Index of the batch's first row in the file.
    pub first_row: usize,
    pub rows: usize,
    /// Byte offset of the batch's values in the file (little-endian f32, row-major).
    pub offset: u64,
}

/// Buffers an IPC record batch holds for a column of type `data_type`, in the order the
/// format lays them out; `None` for types the pipeline never writes.
fn ipc_buffer_count(data_type: &DataType) -> Option<usize> {
    match data_type {
        DataType::Utf8 | DataType::Binary => Some(3), // validity, offsets, data
        DataType::FixedSizeList(item, _) => Some(1 + ipc_buffer_count(item.data_type())?),
        t if t.is_primitive() || *t == DataType::Boolean => Some(2), // validity, values
        _ => None,
    }
}

/// The location in an uncompressed Arrow IPC file of every record batch's values of
/// fixed-size `Float32` list column `name` (`size` values per row), read from the file's
/// footer and message headers only. With it a reader fetches any rows by position
/// ([`read_list_rows`]) instead of holding the whole column in memory.
pub fn list_extents(
    path: &Path,
    file: &File,
    schema: &Schema,
    name: &str,
    size: usize,
) -> Result<Vec<ListExtent>, CoreError> {
    use std::os::unix::fs::FileExt;
    let corrupt = |what: &str| arrow_error(path, format!("{what} (truncated or corrupt?)"));
    let read_at = |offset: u64, len: usize| -> Result<Vec<u8>, CoreError> {
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, offset)
            .map_err(|_| corrupt("ends inside an Arrow structure"))?;
        Ok(bytes)
    };
    // The column's values buffer: its own validity, the item's validity, then the values.
    let mut values_buffer = 2;
    for field in schema.fields() {
        if field.name() == name {
            break;
        }
        values_buffer += ipc_buffer_count(field.data_type()).ok_or_else(|| {
            arrow_error(
                path,
                format!("column '{}' has an unsupported type", field.name()),
            )
        })?;
    }
    let file_len = file.metadata().map_err(|e| CoreError::io(path, e))?.len();
    if file_len < 10 {
        return Err(corrupt("too short for an Arrow IPC file"));
    }
    let trailer: [u8; 10] = read_at(file_len - 10, 10)?.try_into().expect("10 bytes");
    let footer_len = arrow::ipc::reader::read_footer_length(trailer)
        .map_err(|e| corrupt(&e.to_string()))? as u64;
    let footer_start = (file_len - 10)
        .checked_sub(footer_len)
        .ok_or_else(|| corrupt("footer longer than the file"))?;
    let footer_bytes = read_at(footer_start, footer_len as usize)?;
    let footer =
        arrow::ipc::root_as_footer(&footer_bytes).map_err(|e| corrupt(&format!("footer: {e}")))?;
    let mut extents = Vec::new();
    let mut first_row = 0;
    for block in footer.recordBatches().iter().flatten() {
        let header_len = usize::try_from(block.metaDataLength())
            .map_err(|_| corrupt("negative message length"))?;
        let offset = u64::try_from(block.offset()).map_err(|_| corrupt("negative offset"))?;
        let header = read_at(offset, header_len)?;
        // An encapsulated message: [continuation marker] length, then the flatbuffer.
        let skip = if header.get(..4) == Some(&[0xff; 4]) {
            8
        } else {
            4
        };
        let message = header
            .get(skip..)
            .and_then(|m| arrow::ipc::root_as_message(m).ok())
            .ok_or_else(|| corrupt("unreadable record batch header"))?;
        let batch = message
            .header_as_record_batch()
            .ok_or_else(|| corrupt("a footer block that is not a record batch"))?;
        if batch.compression().is_some() {
            return Err(arrow_error(path, "compressed Arrow IPC is not supported"));
        }
        let rows = usize::try_from(batch.length()).map_err(|_| corrupt("negative row count"))?;
        let buffer = batch
            .buffers()
            .filter(|b| b.len() > values_buffer)
            .map(|b| b.get(values_buffer))
            .ok_or_else(|| corrupt(&format!("record batch lacks column '{name}'")))?;
        let start = offset + header_len as u64 + buffer.offset() as u64;
        let needed = (rows * size * 4) as u64;
        if (buffer.length() as u64) < needed || start + needed > footer_start {
            return Err(corrupt(&format!(
                "column '{name}' is shorter than its rows"
            )));
        }
        extents.push(ListExtent {
            first_row,
            rows,
            offset: start,
        });
        first_row += rows;
    }
    Ok(extents)
}

/// Append rows `rows` (`size` values each) of the column located by `extents` to `out`,
/// reading runs of consecutive rows with one `pread` each.
pub fn read_list_rows(
    path: &Path,
    file: &File,
    extents: &[ListExtent],
    size: usize,
    rows: impl IntoIterator<Item = usize>,
    out: &mut Vec<f32>,
) -> Result<(), CoreError> {
    use std::os::unix::fs::FileExt;
    let row_bytes = size * 4;
    let mut bytes = Vec::new();
    let mut flush = |run: Option<(u64, usize)>, out: &mut Vec<f32>| -> Result<(), CoreError> {
        let Some((offset, count)) = run else {
            return Ok(());
        };
        bytes.resize(count * row_bytes, 0);
        file.read_exact_at(&mut bytes, offset)
            .map_err(|e| CoreError::io(path, e))?;
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
        );
        Ok(())
    };
    // (file offset, rows) of the run being gathered, and the offset its next row would have.
    let mut run: Option<(u64, usize)> = None;
    let mut next_offset = u64::MAX;
    for row in rows {
        let batch = extents.partition_point(|e| e.first_row + e.rows <= row);
        let extent = extents
            .get(batch)
            .ok_or_else(|| arrow_error(path, format!("row {row} is past the end of the file")))?;
        let offset = extent.offset + ((row - extent.first_row) * row_bytes) as u64;
        match &mut run {
            Some((_, count)) if offset == next_offset => *count += 1,
            _ => {
                flush(run.take(), out)?;
                run = Some((offset, 1));
            }
        }
        next_offset = offset + row_bytes as u64;
    }
    flush(run, out)
}

/// The `id` column of `batch`.
pub fn ids<'a>(path: &Path, batch: &'a RecordBatch) -> Result<&'a StringArray, CoreError> {
    batch
        .column_by_name("id")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| arrow_error(path, "has no Utf8 column 'id'"))
}

/// The `label` column of `batch` (nulls where unlabelled).
pub fn labels<'a>(path: &Path, batch: &'a RecordBatch) -> Result<&'a UInt8Array, CoreError> {
    batch
        .column_by_name("label")
        .and_then(|c| c.as_primitive_opt())
        .ok_or_else(|| arrow_error(path, "has no UInt8 column 'label'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.arrow");
        let schema = Arc::new(Schema::new(vec![id_field(), f32_list_field("stamp", 3)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(f32_list_array(vec![1., 2., 3., 4., 5., 6.], 3)),
            ],
        )
        .unwrap();
        write_ipc::<CoreError>(&path, schema.clone(), [Ok(batch)]).unwrap();
        let (read_schema, batches) = read_ipc(&path).unwrap();
        expect_field(&path, &read_schema, &f32_list_field("stamp", 3)).unwrap();
        assert!(expect_field(&path, &read_schema, &f32_list_field("stamp", 4)).is_err());
        assert_eq!(
            f32_list_values(&path, &batches[0], "stamp").unwrap(),
            &[1., 2., 3., 4., 5., 6.]
        );
        assert_eq!(ids(&path, &batches[0]).unwrap().value(1), "b");

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = read_ipc(&path).unwrap_err().to_string();
        assert!(err.contains("t.arrow") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn list_rows_are_read_by_position_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.arrow");
        let schema = Arc::new(Schema::new(vec![
            id_field(),
            label_field(),
            f32_list_field("stamp", 2),
            Field::new("snr", DataType::Float32, false),
        ]));
        // Batches of 3, 1 and 2 rows; row r holds [r, -r].
        let batch = |rows: std::ops::Range<usize>| {
            let values = rows.clone().flat_map(|r| [r as f32, -(r as f32)]).collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        rows.clone().map(|r| format!("c{r}")),
                    )),
                    Arc::new(UInt8Array::from_iter_values(
                        rows.clone().map(|r| (r % 2) as u8),
                    )),
                    Arc::new(f32_list_array(values, 2)),
                    Arc::new(Float32Array::from_iter_values(rows.map(|r| r as f32))),
                ],
            )
        };
        write_ipc::<CoreError>(
            &path,
            schema.clone(),
            [batch(0..3), batch(3..4), batch(4..6)].map(|b| Ok(b.unwrap())),
        )
        .unwrap();
        let file = File::open(&path).unwrap();
        let extents = list_extents(&path, &file, &schema, "stamp", 2).unwrap();
        assert_eq!(
            extents.iter().map(|e| e.rows).collect::<Vec<_>>(),
            [3, 1, 2]
        );
        let mut out = Vec::new();
        read_list_rows(&path, &file, &extents, 2, [5, 0, 1, 2, 3, 4, 1], &mut out).unwrap();
        assert_eq!(
            out,
            [
                5., -5., 0., -0., 1., -1., 2., -2., 3., -3., 4., -4., 1., -1.
            ]
        );
        let past = read_list_rows(&path, &file, &extents, 2, [6], &mut out).unwrap_err();
        assert!(past.to_string().contains("past the end"), "{past}");

        // A truncated file is refused, naming it.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
        let file = File::open(&path).unwrap();
        let err = list_extents(&path, &file, &schema, "stamp", 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.arrow") && err.contains("corrupt"), "{err}");
    }
}
