//! CSV fixtures shared by the library and binary tests: tiny candidate sets and edits to them.

#![allow(dead_code)] // each test binary uses its own subset

use std::fmt::Write as _;
use std::path::Path;

use hits_core::STAMP_PIXELS;
use hits_core::config::Layout;

pub const CHANNEL_FILES: [&str; 4] = [
    "template.csv",
    "science.csv",
    "difference.csv",
    "snr_difference.csv",
];

/// A distinct, finite pixel value for every (channel, candidate, pixel).
pub fn pixel(channel: usize, row: usize, p: usize) -> f32 {
    (channel * 1000 + row * 7) as f32 + p as f32 * 0.25
}

/// Write `rows` candidates in `layout` to `dir`; labels alternate 0, 1.
pub fn write_split(dir: &Path, rows: usize, layout: Layout) {
    std::fs::create_dir_all(dir).unwrap();
    for (c, name) in CHANNEL_FILES.iter().enumerate() {
        let mut text = String::new();
        if layout == Layout::IdHeader {
            text.push_str("id");
            for p in 0..STAMP_PIXELS {
                write!(text, ",p{p}").unwrap();
            }
            text.push('\n');
        }
        for row in 0..rows {
            let cells: Vec<String> = (0..STAMP_PIXELS)
                .map(|p| pixel(c, row, p).to_string())
                .collect();
            if layout == Layout::IdHeader {
                write!(text, "cand-{row},").unwrap();
            }
            writeln!(text, "{}", cells.join(",")).unwrap();
        }
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mut labels = String::new();
    if layout == Layout::IdHeader {
        labels.push_str("id,label\n");
    }
    for row in 0..rows {
        if layout == Layout::IdHeader {
            write!(labels, "cand-{row},").unwrap();
        }
        writeln!(labels, "{}", row % 2).unwrap();
    }
    std::fs::write(dir.join("labels.csv"), labels).unwrap();
}

/// Replace line `line` (0-based) of `file` with what `edit` makes of it.
pub fn edit_line(dir: &Path, file: &str, line: usize, edit: impl FnOnce(&str) -> String) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[line] = edit(&lines[line]);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

/// Set cell `column` (0-based, counting the id column) of line `line` of `file`.
pub fn set_cell(dir: &Path, file: &str, line: usize, column: usize, value: &str) {
    edit_line(dir, file, line, |l| {
        let mut cells: Vec<&str> = l.split(',').collect();
        cells[column] = value;
        cells.join(",")
    });
}
