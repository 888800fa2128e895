//! Reading `real_science_sequences.csv`: every epoch of real HiTS 2015 objects.

use std::path::Path;

use hits_core::STAMP_PIXELS;

use crate::error::SimError;

/// What a real object is, as the file's `class` column names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectClass {
    Constant,
    RrLyrae,
    EclipsingBinary,
    Supernova,
}

impl ObjectClass {
    pub const ALL: [ObjectClass; 4] = [
        ObjectClass::Constant,
        ObjectClass::RrLyrae,
        ObjectClass::EclipsingBinary,
        ObjectClass::Supernova,
    ];

    /// The name in the file's `class` column.
    pub fn name(self) -> &'static str {
        match self {
            ObjectClass::Constant => "constant",
            ObjectClass::RrLyrae => "RRLyrae",
            ObjectClass::EclipsingBinary => "EB",
            ObjectClass::Supernova => "SN",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == text)
    }

    /// Stars are point sources in every epoch, so their own stamps measure the PSF.
    pub fn is_star(self) -> bool {
        self != ObjectClass::Supernova
    }
}

/// One epoch of an object: raw g-band science ADU (sky not subtracted), row-major 21x21.
#[derive(Debug, Clone, PartialEq)]
pub struct RealEpoch {
    pub epoch: u32,
    pub mjd: f64,
    pub pixels: Vec<f32>,
}

/// Every epoch of one object, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSequence {
    pub name: String,
    pub class: ObjectClass,
    pub field: String,
    pub epochs: Vec<RealEpoch>,
}

const COLUMNS: [&str; 5] = ["name", "class", "field", "epoch", "mjd"];

/// Read `name,class,field,epoch,mjd,p0..p440`; objects keep the order of their first row.
pub fn read_sequences(path: &Path) -> Result<Vec<ObjectSequence>, SimError> {
    let text = std::fs::read_to_string(path).map_err(|e| SimError::io(path, e))?;
    parse_sequences(&text, path)
}

pub fn parse_sequences(text: &str, path: &Path) -> Result<Vec<ObjectSequence>, SimError> {
    let bad = |line: usize, message: String| SimError::Parse {
        path: path.into(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = lines
        .next()
        .map(|(_, l)| l.trim_end_matches('\r').split(',').collect())
        .unwrap_or_default();
    let expected = COLUMNS.len() + STAMP_PIXELS;
    if header.len() != expected || header[..COLUMNS.len()] != COLUMNS {
        return Err(bad(
            1,
            format!(
                "header must be {} then p0..p{} ({expected} columns), found {} columns",
                COLUMNS.join(","),
                STAMP_PIXELS - 1,
                header.len()
            ),
        ));
    }
    let mut objects: Vec<ObjectSequence> = Vec::new();
    for (i, line) in lines {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let row = i + 1;
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != expected {
            return Err(bad(
                row,
                format!("{} columns, expected {expected}", cells.len()),
            ));
        }
        let class = ObjectClass::parse(cells[1]).ok_or_else(|| {
            bad(
                row,
                format!(
                    "column 2 (class): '{}' is not one of constant, RRLyrae, EB, SN",
                    cells[1]
                ),
            )
        })?;
        let epoch = cells[3]
            .parse::<u32>()
            .map_err(|e| bad(row, format!("column 4 (epoch): '{}': {e}", cells[3])))?;
        let mjd = cells[4]
            .parse::<f64>()
            .ok()
            .filter(|m| m.is_finite())
            .ok_or_else(|| bad(row, format!("column 5 (mjd): '{}' is not a date", cells[4])))?;
        let pixels = cells[COLUMNS.len()..]
            .iter()
            .enumerate()
            .map(|(p, c)| {
                c.trim().parse::<f32>().map_err(|e| {
                    bad(
                        row,
                        format!("column {} (p{p}): '{c}': {e}", COLUMNS.len() + p + 1),
                    )
                })
            })
            .collect::<Result<Vec<f32>, _>>()?;
        let (name, field) = (cells[0], cells[2]);
        let epoch = RealEpoch { epoch, mjd, pixels };
        match objects.iter_mut().find(|o| o.name == name) {
            Some(object) if object.class != class || object.field != field => {
                return Err(bad(
                    row,
                    format!("object {name} changes class or field between rows"),
                ));
            }
            Some(object) => object.epochs.push(epoch),
            None => objects.push(ObjectSequence {
                name: name.to_string(),
                class,
                field: field.to_string(),
                epochs: vec![epoch],
            }),
        }
    }
    for object in &mut objects {
        object.epochs.sort_by_key(|e| e.epoch);
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, class: &str, epoch: u32, value: &str) -> String {
        let pixels = vec![value; STAMP_PIXELS].join(",");
        format!(
            "{name},{class},F1,{epoch},{},{pixels}\n",
            57070.0 + f64::from(epoch)
        )
    }

    fn header() -> String {
        let pixels: Vec<String> = (0..STAMP_PIXELS).map(|p| format!("p{p}")).collect();
        format!("name,class,field,epoch,mjd,{}\n", pixels.join(","))
    }

    #[test]
    fn groups_epochs_by_object_in_time_order() {
        let text = header()
            + &row("a", "RRLyrae", 1, "2")
            + &row("b", "SN", 0, "5")
            + &row("a", "RRLyrae", 0, "1");
        let objects = parse_sequences(&text, Path::new("s.csv")).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].class, ObjectClass::RrLyrae);
        assert_eq!(
            objects[0]
                .epochs
                .iter()
                .map(|e| e.epoch)
                .collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(objects[0].epochs[0].pixels[440], 1.0);
        assert!(!objects[1].class.is_star());
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        let cases = [
            (
                header() + &row("a", "quasar", 0, "1"),
                "line 2: column 2 (class)",
            ),
            (header() + &row("a", "SN", 0, "x"), "line 2: column 6 (p0)"),
            (
                header() + &row("a", "SN", 0, "1") + "a,SN,F1\n",
                "line 3: 3 columns",
            ),
            (
                header() + &row("a", "SN", 0, "1") + &row("a", "EB", 1, "1"),
                "line 3: object a changes class",
            ),
            ("name,class\n".to_string(), "line 1: header must be"),
        ];
        for (text, expected) in cases {
            let err = parse_sequences(&text, Path::new("s.csv"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err} lacks {expected}");
        }
    }

    #[test]
    fn the_shipped_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/hits2015/real_science_sequences.csv");
        let objects = read_sequences(&path).unwrap();
        assert_eq!(objects.len(), 78);
        let epochs: usize = objects.iter().map(|o| o.epochs.len()).sum();
        assert_eq!(epochs, 2038);
    }
}
