//! Small CSV tables with a header row, as people exchange predictions and answer keys
//! (`label,p_real[,snr]`, `id,label`, `id,p_real,label`). Fields are split on commas without
//! quoting — ids and numbers never need it. Every error names the file and, for a bad value,
//! the row, line and column.

use std::path::{Path, PathBuf};

use crate::CoreError;

#[derive(Debug, Clone)]
pub struct Table {
    path: PathBuf,
    header: Vec<String>,
    /// (file line, fields) of every non-blank data line.
    rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    /// Read `path`, refusing a missing or empty file, a header without rows and ragged rows.
    pub fn read(path: &Path) -> Result<Self, CoreError> {
        let file_error = |message: String| CoreError::Csv {
            path: path.to_path_buf(),
            message,
        };
        if !path.exists() {
            return Err(file_error("file not found".into()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let split =
            |line: &str| -> Vec<String> { line.split(',').map(|f| f.trim().to_string()).collect() };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line))
            .filter(|(_, line)| !line.trim().is_empty());
        let (_, header) = lines
            .next()
            .ok_or_else(|| file_error("is empty (expected a header row)".into()))?;
        let header = split(header);
        let mut rows = Vec::new();
        for (line, fields) in lines.map(|(n, l)| (n, split(l))) {
            if fields.len() != header.len() {
                return Err(file_error(format!(
                    "row {} (line {line}) has {} fields, the header has {}",
                    rows.len() + 1,
                    fields.len(),
                    header.len()
                )));
            }
            rows.push((line, fields));
        }
        if rows.is_empty() {
            return Err(file_error("has a header but no rows".into()));
        }
        Ok(Table {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of data rows (never 0).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.header.iter().any(|h| h == name)
    }

    /// An error at data row `row` (from 0) of `column`.
    pub fn cell_error(&self, row: usize, column: &str, message: String) -> CoreError {
        CoreError::Cell {
            path: self.path.clone(),
            row: row + 1,
            line: self.rows[row].0,
            column: column.to_string(),
            message,
        }
    }

    /// Parse every value of `column` with `parse`, whose error message is put in context.
    pub fn parse<T>(
        &self,
        column: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, CoreError> {
        let index = self
            .header
            .iter()
            .position(|h| h == column)
            .ok_or_else(|| CoreError::Csv {
                path: self.path.clone(),
                message: format!(
                    "has no '{column}' column (columns: {})",
                    self.header.join(",")
                ),
            })?;
        self.rows
            .iter()
            .enumerate()
            .map(|(row, (_, fields))| {
                parse(&fields[index]).map_err(|m| self.cell_error(row, column, m))
            })
            .collect()
    }

    /// The non-empty text values of `column` (e.g. ids).
    pub fn texts(&self, column: &str) -> Result<Vec<String>, CoreError> {
        self.parse(column, |v| {
            if v.is_empty() {
                Err("empty value".into())
            } else {
                Ok(v.to_string())
            }
        })
    }

    /// The 0/1 labels of `column` (0 = bogus, 1 = real).
    pub fn labels(&self, column: &str) -> Result<Vec<u8>, CoreError> {
        self.parse(column, |v| match v {
            "0" => Ok(0),
            "1" => Ok(1),
            _ => Err(format!("{v:?} is not a label (0 = bogus, 1 = real)")),
        })
    }

    /// The finite numbers of `column`.
    pub fn numbers(&self, column: &str) -> Result<Vec<f64>, CoreError> {
        self.parse(column, |v| match v.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(format!("{v:?} is not a finite number")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<Table, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        Table::read(&path).map_err(|e| e.to_string().replace(&*dir.path().to_string_lossy(), ""))
    }

    #[test]
    fn reads_typed_columns() {
        let t = table("\u{feff}id,label,p\r\na,1,0.5\n\nb,0,1e-3\n").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.texts("id").unwrap(), ["a", "b"]);
        assert_eq!(t.labels("label").unwrap(), [1, 0]);
        assert_eq!(t.numbers("p").unwrap(), [0.5, 1e-3]);
        assert!(t.has_column("p") && !t.has_column("snr"));
    }

    #[test]
    fn errors_name_file_row_line_and_column() {
        let t = table("id,label\na,1\n\nb,2\n").unwrap();
        assert_eq!(
            t.labels("label").unwrap_err().to_string(),
            format!(
                "{}: row 2 (line 4), column label: \"2\" is not a label (0 = bogus, 1 = real)",
                t.path().display()
            )
        );
        let err = t.numbers("p_real").unwrap_err().to_string();
        assert!(
            err.contains("no 'p_real' column (columns: id,label)"),
            "{err}"
        );
        assert!(
            t.numbers("id")
                .unwrap_err()
                .to_string()
                .contains("not a finite number")
        );
        let err = table("id,label\na,1\nb\n").unwrap_err();
        assert!(
            err.ends_with("t.csv: row 2 (line 3) has 1 fields, the header has 2"),
            "{err}"
        );
        assert!(table("").unwrap_err().contains("is empty"));
        assert!(table("id,label\n").unwrap_err().contains("no rows"));
        assert!(table("id\nnan\n").unwrap().numbers("id").is_err());
    }

    #[test]
    fn missing_file_is_named() {
        let err = Table::read(Path::new("nowhere/answers.csv"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "nowhere/answers.csv: file not found");
    }
}
