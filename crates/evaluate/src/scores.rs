//! Reading external predictions: a CSV with a header and the columns `label`, `p_real` and,
//! optionally, `snr` (extra columns are ignored).

use std::path::Path;

use polars::prelude::*;

use crate::{EvaluateError, Scores};

fn column_error(path: &Path, row: usize, column: &str, message: String) -> EvaluateError {
    EvaluateError::Cell {
        path: path.to_path_buf(),
        row: row + 1,
        line: row + 2,
        column: column.to_string(),
        message,
    }
}

/// Read and check a scores file.
pub fn read_scores(path: &Path) -> Result<Scores, EvaluateError> {
    let file_error = |message: String| EvaluateError::File {
        path: path.to_path_buf(),
        message,
    };
    if !path.exists() {
        return Err(file_error("file not found".into()));
    }
    let frame = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0)) // everything as text: we check every value ourselves
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|reader| reader.finish())
        .map_err(|e| {
            file_error(
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })?;
    if frame.height() == 0 {
        return Err(file_error("has no rows".into()));
    }
    let text = |name: &str| -> Result<Option<StringChunked>, EvaluateError> {
        match frame.column(name) {
            Ok(column) => Ok(Some(
                column.str().map_err(|e| file_error(e.to_string()))?.clone(),
            )),
            Err(_) => Ok(None),
        }
    };
    let number = |name: &str, values: &StringChunked| -> Result<Vec<f64>, EvaluateError> {
        values
            .iter()
            .enumerate()
            .map(|(row, v)| match v.map(str::parse::<f64>) {
                Some(Ok(x)) if x.is_finite() => Ok(x),
                _ => Err(column_error(
                    path,
                    row,
                    name,
                    format!("{:?} is not a finite number", v.unwrap_or("")),
                )),
            })
            .collect()
    };
    let require = |name: &str| {
        text(name)?
            .ok_or_else(|| file_error(format!("has no '{name}' column (need label,p_real[,snr])")))
    };
    let labels = require("label")?
        .iter()
        .enumerate()
        .map(|(row, v)| match v {
            Some("0") => Ok(0),
            Some("1") => Ok(1),
            other => Err(column_error(
                path,
                row,
                "label",
                format!(
                    "{:?} is not a label (0 = bogus, 1 = real)",
                    other.unwrap_or("")
                ),
            )),
        })
        .collect::<Result<Vec<u8>, _>>()?;
    let p_real = number("p_real", &require("p_real")?)?;
    if let Some(row) = p_real.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(column_error(
            path,
            row,
            "p_real",
            format!("{} is not a probability in [0, 1]", p_real[row]),
        ));
    }
    let snr = text("snr")?
        .map(|values| number("snr", &values))
        .transpose()?;
    Ok(Scores {
        labels,
        p_real,
        snr,
    })
}
