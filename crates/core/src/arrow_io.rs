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
use crate::io::write_atomic;

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

/// Write record batches to `path` as an Arrow IPC file, atomically: the first failing batch
/// aborts the write and leaves any previous file in place.
pub fn write_ipc<E: From<CoreError>>(
    path: &Path,
    schema: SchemaRef,
    batches: impl IntoIterator<Item = Result<RecordBatch, E>>,
) -> Result<(), E> {
    write_atomic(path, |out| {
        let mut writer = FileWriter::try_new(out, &schema).map_err(|e| arrow_error(path, e))?;
        for batch in batches {
            writer.write(&batch?).map_err(|e| arrow_error(path, e))?;
        }
        Ok(writer.finish().map_err(|e| arrow_error(path, e))?)
    })
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
}
