//! Reading external predictions: a CSV with a header and the columns `label`, `p_real` and,
//! optionally, `snr` (extra columns are ignored).

use std::path::Path;

use hits_core::table::Table;

use crate::{EvaluateError, Scores};

/// Read and check a scores file.
pub fn read_scores(path: &Path) -> Result<Scores, EvaluateError> {
    let table = Table::read(path)?;
    let labels = table.labels("label")?;
    let p_real = table.parse("p_real", |v| match v.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{v:?} is not a probability in [0, 1]")),
    })?;
    let snr = if table.has_column("snr") {
        Some(table.numbers("snr")?)
    } else {
        None
    };
    Ok(Scores {
        labels,
        p_real,
        snr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Scores, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores.csv");
        std::fs::write(&path, text).unwrap();
        read_scores(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn optional_snr_and_checked_values() {
        let s = read("label,p_real,extra\n1,0.9,x\n0,0.1,y\n").unwrap();
        assert_eq!(
            (s.labels, s.p_real, s.snr),
            (vec![1, 0], vec![0.9, 0.1], None)
        );
        assert_eq!(
            read("label,p_real,snr\n1,1,-7.5\n").unwrap().snr,
            Some(vec![-7.5])
        );
        let err = read("label,p_real\n1,0.9\n0,1.5\n").unwrap_err();
        assert!(
            err.contains("row 2 (line 3), column p_real: \"1.5\" is not a probability"),
            "{err}"
        );
        let err = read("p_real\n0.5\n").unwrap_err();
        assert!(err.contains("no 'label' column"), "{err}");
    }
}
