//! NumPy input, as Python users and other real/bogus projects keep stamps: a `.npy` array of
//! shape (N, 21, 21, 4), channels last in the seed's order (template, science, difference,
//! SNR-difference), float32 or float64; or an `.npz` archive holding that array (`stamps`, or
//! its only 4-D array) with optional `ids` (integers or strings) and `labels` (0/1, integers
//! or booleans) of length N.
//!
//! The same checks as the CSVs (finite values, unique ids, duplicates policy, labels in
//! {0,1}), each a one-line error naming the file, candidate and channel. A damaged or hostile
//! file gets an error, never a panic or an allocation of what its header claims: headers
//! longer than NumPy's own limit are refused before they are read, the declared size is
//! checked against what the file can hold, and the data are collected as they arrive.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use hits_core::config::DuplicatePolicy;
use hits_core::{Channel, STAMP_PIXELS, STAMP_SIDE};
use npyz::{NpyFile, Order};

use crate::checks::{IdRegistry, StampRegistry};
use crate::{IngestError, SplitChunk, SplitData, drop_rows};

/// NumPy's reader refuses longer headers (`max_header_size`, NumPy ≥ 1.24).
const MAX_HEADER_BYTES: usize = 10_000;
/// Deflate cannot expand data by more than this factor: an `.npz` member that declares more
/// bytes than its archive could hold compressed is refused before it is read.
const MAX_DEFLATE_RATIO: u64 = 1_032;
/// Candidate stamps in an `.npz`: this name, or the archive's only 4-D array.
pub const STAMPS_ARRAY: &str = "stamps";
pub const IDS_ARRAY: &str = "ids";
pub const LABELS_ARRAY: &str = "labels";

/// Which NumPy container a path is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumpyFormat {
    Npy,
    Npz,
}

impl NumpyFormat {
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "npy" => Some(NumpyFormat::Npy),
            "npz" => Some(NumpyFormat::Npz),
            _ => None,
        }
    }
}

/// Read and check `path` (`.npy` or `.npz`).
pub fn read_numpy(path: &Path, duplicates: DuplicatePolicy) -> Result<SplitData, IngestError> {
    // Headers and zip errors can quote the file's own bytes: keep the message on one line.
    let bad = |message: String| {
        let line = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c });
        IngestError::file(path, line.collect::<String>())
    };
    let format =
        NumpyFormat::of(path).ok_or_else(|| bad("is neither a .npy nor a .npz file".into()))?;
    let file_len = std::fs::metadata(path)
        .map_err(|e| hits_core::CoreError::io(path, e))?
        .len();
    let open = || -> Result<BufReader<File>, IngestError> {
        Ok(BufReader::new(
            File::open(path).map_err(|e| hits_core::CoreError::io(path, e))?,
        ))
    };
    let (stamps, ids, labels) = match format {
        NumpyFormat::Npy => {
            let array = read_array(open()?, "", file_len).map_err(&bad)?;
            (array.into_stamps().map_err(&bad)?, None, None)
        }
        NumpyFormat::Npz => {
            let mut archive = zip::ZipArchive::new(open()?)
                .map_err(|e| bad(format!("not a readable .npz (zip) archive: {e}")))?;
            let names: Vec<String> = archive.file_names().map(str::to_string).collect();
            let limit = file_len.saturating_mul(MAX_DEFLATE_RATIO);
            let mut member = |name: &str| -> Result<Option<Array>, IngestError> {
                let Some(entry) = names.iter().find(|n| array_name(n) == name) else {
                    return Ok(None);
                };
                let entry = archive
                    .by_name(entry)
                    .map_err(|e| bad(format!("member '{name}': {e}")))?;
                let available = entry.size().min(limit);
                read_array(entry, name, available).map(Some).map_err(&bad)
            };
            let stamps = match member(STAMPS_ARRAY)? {
                Some(array) => array,
                None => {
                    let arrays: Vec<String> =
                        names.iter().map(|n| array_name(n).to_string()).collect();
                    let candidates: Vec<&String> = arrays
                        .iter()
                        .filter(|n| ![IDS_ARRAY, LABELS_ARRAY].contains(&n.as_str()))
                        .collect();
                    match candidates.as_slice() {
                        [only] => {
                            let only = only.to_string();
                            member(&only)?.expect("listed member")
                        }
                        _ => {
                            return Err(bad(format!(
                                "no '{STAMPS_ARRAY}' array, and not exactly one other array to take for the stamps (has: {})",
                                arrays.join(", ")
                            )));
                        }
                    }
                }
            };
            let stamps = stamps.into_stamps().map_err(&bad)?;
            let n = stamps.candidates;
            let ids = member(IDS_ARRAY)?
                .map(|a| a.into_ids(n))
                .transpose()
                .map_err(&bad)?;
            let labels = member(LABELS_ARRAY)?
                .map(|a| a.into_labels(n))
                .transpose()
                .map_err(&bad)?;
            (stamps, ids, labels)
        }
    };
    check(path, stamps, ids, labels, duplicates)
}

/// `stamps.npy` in an archive is the array `stamps`.
fn array_name(member: &str) -> &str {
    member.strip_suffix(".npy").unwrap_or(member)
}

/// One array as read: its shape and its values in C order.
struct Array {
    name: String,
    shape: Vec<u64>,
    values: Values,
}

enum Values {
    Float(Vec<f32>),
    Integer(Vec<i64>),
    Text(Vec<String>),
}

/// Stamps in channel-major CSV order: per channel, N row-major 21x21 stamps.
struct Stamps {
    candidates: usize,
    channels: [Vec<f32>; 4],
    /// First non-finite value: (candidate, channel, pixel).
    non_finite: Option<(usize, usize, usize)>,
}

/// Read one array from `reader` (positioned at its magic string), which holds at most
/// `available` bytes. Errors are messages; the caller adds the file.
fn read_array(mut reader: impl Read, name: &str, available: u64) -> Result<Array, String> {
    let what = if name.is_empty() {
        String::new()
    } else {
        format!("array '{name}': ")
    };
    // Magic (6 bytes), version (2), header length (2 in version 1, 4 in 2 and 3).
    let mut preamble = [0u8; 12];
    reader
        .read_exact(&mut preamble[..10])
        .map_err(|_| format!("{what}too short for a .npy header"))?;
    if &preamble[..6] != b"\x93NUMPY" {
        return Err(format!(
            "{what}not a .npy array (no \\x93NUMPY magic string)"
        ));
    }
    let (preamble_len, header_len) = match preamble[6] {
        1 => (
            10,
            usize::from(u16::from_le_bytes([preamble[8], preamble[9]])),
        ),
        2 | 3 => {
            reader
                .read_exact(&mut preamble[10..12])
                .map_err(|_| format!("{what}too short for a .npy header"))?;
            let len = u32::from_le_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]);
            (12, len as usize)
        }
        v => return Err(format!("{what}.npy format version {v} (known: 1, 2, 3)")),
    };
    if header_len > MAX_HEADER_BYTES {
        return Err(format!(
            "{what}header of {header_len} bytes declared (NumPy's limit is {MAX_HEADER_BYTES})"
        ));
    }
    let file = NpyFile::new((&preamble[..preamble_len]).chain(reader))
        .map_err(|e| format!("{what}bad .npy header: {e}"))?;
    if file.order() == Order::Fortran {
        return Err(format!(
            "{what}Fortran-ordered array: save it in C order (numpy.ascontiguousarray)"
        ));
    }
    let shape = file.shape().to_vec();
    let type_str = file.dtype().descr();
    let count = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("{what}shape {shape:?} overflows"))?;
    let item = match file.dtype() {
        npyz::DType::Plain(t) => t.size_field(),
        _ => {
            return Err(format!(
                "{what}dtype {type_str}: expected a plain numeric or string type"
            ));
        }
    };
    let data_bytes = (preamble_len + header_len) as u64;
    let declared = count
        .checked_mul(item)
        .ok_or_else(|| format!("{what}shape {shape:?} overflows"))?;
    let data_available = available.saturating_sub(data_bytes);
    if declared > data_available {
        return Err(format!(
            "{what}shape {shape:?} of {type_str} declares {declared} bytes of data, but the file holds {data_available} (truncated or damaged)"
        ));
    }
    let collect = |file| -> Result<Values, String> { read_values(file, &what, &type_str) };
    Ok(Array {
        name: name.to_string(),
        shape,
        values: collect(file)?,
    })
}

/// The values, collected as they are read (a short file stops the read, whatever its header
/// said), as float, integer or text.
fn read_values<R: Read>(file: NpyFile<R>, what: &str, type_str: &str) -> Result<Values, String> {
    let truncated = |e: std::io::Error| format!("{what}data end early or are unreadable: {e}");
    macro_rules! try_types {
        ($file:expr, $variant:ident, $($t:ty),+) => {{
            let mut file = $file;
            $(
                match file.try_data::<$t>() {
                    Ok(reader) => {
                        let mut out = Vec::new();
                        for value in reader {
                            out.push(value.map_err(truncated)? as _);
                        }
                        return Ok(Values::$variant(out));
                    }
                    Err(back) => file = back,
                }
            )+
            file
        }};
    }
    let file = try_types!(file, Float, f32, f64);
    let file = try_types!(file, Integer, i64, i32, i16, i8, u64, u32, u16, u8);
    let mut file = file;
    match file.try_data::<bool>() {
        Ok(reader) => {
            let mut out = Vec::new();
            for value in reader {
                out.push(i64::from(value.map_err(truncated)?));
            }
            return Ok(Values::Integer(out));
        }
        Err(back) => file = back,
    }
    match file.try_data::<String>() {
        Ok(reader) => {
            let mut out = Vec::new();
            for value in reader {
                out.push(value.map_err(truncated)?);
            }
            Ok(Values::Text(out))
        }
        Err(_) => Err(format!(
            "{what}dtype {type_str} is not a number or a string"
        )),
    }
}

impl Array {
    fn label(&self) -> String {
        if self.name.is_empty() {
            "the array".into()
        } else {
            format!("array '{}'", self.name)
        }
    }

    /// (N, 21, 21, 4) channels last → per channel, N row-major stamps.
    fn into_stamps(self) -> Result<Stamps, String> {
        let side = STAMP_SIDE as u64;
        let channels = Channel::ALL.len() as u64;
        if self.shape.len() != 4 || self.shape[1..] != [side, side, channels] {
            return Err(format!(
                "{} has shape {:?}: expected (N, {side}, {side}, {channels}), channels last in the order {}",
                self.label(),
                self.shape,
                Channel::ALL.map(|c| c.name()).join(", ")
            ));
        }
        let Values::Float(values) = self.values else {
            return Err(format!(
                "{}: stamps must be float32 or float64",
                self.label()
            ));
        };
        let n = self.shape[0] as usize;
        let mut out: [Vec<f32>; 4] = Default::default();
        for channel in &mut out {
            channel.reserve_exact(n * STAMP_PIXELS);
        }
        let mut non_finite = None;
        for (i, pixel) in values.chunks_exact(Channel::ALL.len()).enumerate() {
            for (c, &v) in pixel.iter().enumerate() {
                if non_finite.is_none() && !v.is_finite() {
                    non_finite = Some((i / STAMP_PIXELS, c, i % STAMP_PIXELS));
                }
                out[c].push(v);
            }
        }
        Ok(Stamps {
            candidates: n,
            channels: out,
            non_finite,
        })
    }

    fn into_ids(self, n: usize) -> Result<Vec<String>, String> {
        self.expect_vector(n)?;
        match self.values {
            Values::Integer(v) => Ok(v.iter().map(i64::to_string).collect()),
            Values::Text(v) => Ok(v),
            Values::Float(_) => Err(format!("{}: ids must be integers or strings", self.label())),
        }
    }

    fn into_labels(self, n: usize) -> Result<Vec<u8>, String> {
        self.expect_vector(n)?;
        let Values::Integer(v) = &self.values else {
            return Err(format!(
                "{}: labels must be integers or booleans",
                self.label()
            ));
        };
        v.iter()
            .enumerate()
            .map(|(i, &l)| match l {
                0 | 1 => Ok(l as u8),
                other => Err(format!(
                    "{}: candidate {} has label {other}: expected 0 (bogus) or 1 (real)",
                    self.label(),
                    i + 1
                )),
            })
            .collect()
    }

    fn expect_vector(&self, n: usize) -> Result<(), String> {
        if self.shape != [n as u64] {
            return Err(format!(
                "{} has shape {:?}: expected ({n},), one per candidate",
                self.label(),
                self.shape
            ));
        }
        Ok(())
    }
}

/// The CSV checks on the stamps, ids and labels of `path`.
fn check(
    path: &Path,
    stamps: Stamps,
    ids: Option<Vec<String>>,
    labels: Option<Vec<u8>>,
    duplicates: DuplicatePolicy,
) -> Result<SplitData, IngestError> {
    if let Some((row, c, pixel)) = stamps.non_finite {
        return Err(IngestError::file(
            path,
            format!(
                "candidate {} (index {row}), channel {} pixel p{pixel}: value {} is not finite",
                row + 1,
                Channel::ALL[c].name(),
                stamps.channels[c][row * STAMP_PIXELS + pixel]
            ),
        ));
    }
    let n = stamps.candidates;
    if n == 0 {
        return Err(IngestError::file(path, "holds no candidates"));
    }
    let ids = ids.unwrap_or_else(|| (0..n).map(|i| i.to_string()).collect());
    IdRegistry::new().add(path, false, 0, &ids)?;
    let dropped = StampRegistry::new().add(path, 0, &ids, &stamps.channels, duplicates, |row| {
        ids[row].clone()
    })?;
    let mut chunk = SplitChunk {
        first_row: 0,
        ids,
        labels,
        channels: stamps.channels,
    };
    drop_rows(&mut chunk, dropped.iter().map(|d| d.row - 1));
    Ok(SplitData {
        ids: chunk.ids,
        labels: chunk.labels,
        channels: chunk.channels,
        dropped,
    })
}

/// Writers of small `.npy`/`.npz` files for tests (here and in the crates that read them).
#[cfg(any(test, feature = "toy"))]
pub mod toy {
    use std::io::Write;

    /// A version-1 `.npy` file: `descr` (e.g. `<f4`), `shape`, and the raw data bytes.
    pub fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let shape = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(", ")),
        };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // NumPy pads the header with spaces and a newline to a multiple of 64 bytes.
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    /// Little-endian float32 bytes.
    pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// `stamps` of `n` candidates, channels last: `pixel(candidate, channel, pixel)`.
    pub fn stamps(n: usize, pixel: impl Fn(usize, usize, usize) -> f32) -> Vec<u8> {
        let mut values = Vec::with_capacity(n * 441 * 4);
        for i in 0..n {
            for p in 0..441 {
                for c in 0..4 {
                    values.push(pixel(i, c, p));
                }
            }
        }
        npy("<f4", &[n, 21, 21, 4], &f32_bytes(&values))
    }

    /// An `.npz` archive of `(array name, .npy bytes)`, deflated as `numpy.savez_compressed`.
    pub fn npz(arrays: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options =
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in arrays {
            zip.start_file(format!("{name}.npy"), options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::toy::*;
    use super::*;
    use proptest::prelude::*;

    fn value(i: usize, c: usize, p: usize) -> f32 {
        ((i * 7 + c * 3 + p) as f32 * 0.37).sin()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn error(dir: &Path, name: &str, bytes: &[u8]) -> String {
        let path = write(dir, name, bytes);
        let message = read_numpy(&path, DuplicatePolicy::Refuse)
            .err()
            .unwrap_or_else(|| panic!("{name} was accepted"))
            .to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(message.contains(name), "{message}");
        message
    }

    #[test]
    fn npy_channels_last_become_the_csv_channels() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "night.npy", &stamps(3, value));
        let data = read_numpy(&path, DuplicatePolicy::Refuse).unwrap();
        assert_eq!(data.ids, ["0", "1", "2"]);
        assert!(data.labels.is_none());
        for (c, channel) in data.channels.iter().enumerate() {
            assert_eq!(channel.len(), 3 * STAMP_PIXELS);
            for i in 0..3 {
                for p in [0, 10, 220, 440] {
                    assert_eq!(channel[i * STAMP_PIXELS + p], value(i, c, p), "{i} {c} {p}");
                }
            }
        }
        // float64, as numpy saves by default, reads as the same stamps.
        let f64_bytes: Vec<u8> = (0..3)
            .flat_map(|i| (0..441).flat_map(move |p| (0..4).map(move |c| value(i, c, p) as f64)))
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let wide = write(
            dir.path(),
            "wide.npy",
            &npy("<f8", &[3, 21, 21, 4], &f64_bytes),
        );
        assert_eq!(
            read_numpy(&wide, DuplicatePolicy::Refuse).unwrap().channels,
            data.channels
        );
    }

    #[test]
    fn npz_carries_ids_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<u8> = [101i64, 102, 103]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let labels = vec![1u8, 0, 1];
        let bytes = npz(&[
            ("stamps", stamps(3, value)),
            ("ids", npy("<i8", &[3], &ids)),
            ("labels", npy("|u1", &[3], &labels)),
        ]);
        let path = write(dir.path(), "night.npz", &bytes);
        let data = read_numpy(&path, DuplicatePolicy::Refuse).unwrap();
        assert_eq!(data.ids, ["101", "102", "103"]);
        assert_eq!(data.labels, Some(vec![1, 0, 1]));
        // Under another name, the only array is taken for the stamps; string ids (<U) work.
        let text: Vec<u8> = ["a", "bb", "c"]
            .iter()
            .flat_map(|s| {
                let mut chars: Vec<u32> = s.chars().map(u32::from).collect();
                chars.resize(2, 0);
                chars.into_iter().flat_map(u32::to_le_bytes)
            })
            .collect();
        let other = npz(&[("x", stamps(3, value)), ("ids", npy("<U2", &[3], &text))]);
        let path = write(dir.path(), "other.npz", &other);
        assert_eq!(
            read_numpy(&path, DuplicatePolicy::Refuse).unwrap().ids,
            ["a", "bb", "c"]
        );
    }

    #[test]
    fn each_bad_input_is_one_line_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = stamps(2, value);
        assert!(
            error(
                d,
                "shape.npy",
                &npy("<f4", &[2, 21, 21, 3], &vec![0; 2 * 441 * 3 * 4])
            )
            .contains("expected (N, 21, 21, 4)")
        );
        assert!(
            error(
                d,
                "dtype.npy",
                &npy("<i4", &[2, 21, 21, 4], &vec![0; 2 * 441 * 4 * 4])
            )
            .contains("float32 or float64")
        );
        assert!(error(d, "short.npy", &good[..good.len() - 3]).contains("declares"));
        assert!(error(d, "magic.npy", b"PK\x03\x04 not numpy").contains("magic"));
        // A header that declares terabytes is refused before anything of that size is made.
        assert!(error(d, "huge.npy", &npy("<f4", &[1 << 40, 21, 21, 4], &[])).contains("declares"));
        assert!(
            error(
                d,
                "overflow.npy",
                &npy("<f4", &[1 << 62, 1 << 20, 21, 4], &[])
            )
            .contains("overflows")
        );
        let mut long = b"\x93NUMPY\x02\x00".to_vec();
        long.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(error(d, "header.npy", &long).contains("header of"));
        let mut fortran = good.clone();
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        assert!(error(d, "fortran.npy", &fortran).contains("Fortran"));
        let mut nan = stamps(2, value);
        let at = nan.len() - 4;
        nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
        let message = error(d, "nan.npy", &nan);
        assert!(
            message.contains("candidate 2") && message.contains("snr_difference pixel p440"),
            "{message}"
        );
        let labels = npz(&[
            ("stamps", good.clone()),
            ("labels", npy("|u1", &[2], &[0, 2])),
        ]);
        assert!(error(d, "labels.npz", &labels).contains("label 2"));
        let count = npz(&[
            ("stamps", good.clone()),
            ("labels", npy("|u1", &[3], &[0, 1, 1])),
        ]);
        assert!(error(d, "count.npz", &count).contains("expected (2,)"));
        let two = npz(&[("a", good.clone()), ("b", good.clone())]);
        assert!(error(d, "two.npz", &two).contains("no 'stamps' array"));
        assert!(error(d, "zip.npz", b"not a zip").contains("zip"));
        assert!(error(d, "input.txt", b"").contains("neither"));
    }

    #[test]
    fn duplicates_are_refused_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let same = |i: usize, c: usize, p: usize| value(i % 2, c, p);
        let path = write(dir.path(), "twins.npy", &stamps(3, same));
        let refused = read_numpy(&path, DuplicatePolicy::Refuse)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("duplicate candidate"), "{refused}");
        let kept = read_numpy(&path, DuplicatePolicy::Drop).unwrap();
        assert_eq!(kept.ids, ["0", "1"]);
        assert_eq!(kept.channels[0].len(), 2 * STAMP_PIXELS);
        assert_eq!((kept.dropped[0].row, kept.dropped[0].twin_row), (3, 1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Damaged files (bytes overwritten, or cut short) are an error or valid stamps,
        /// never a panic.
        #[test]
        fn damaged_files_never_panic(
            at in 0usize..200,
            bytes in proptest::collection::vec(any::<u8>(), 1..12),
            cut in 0usize..15_000,
            archive in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut file = stamps(1, value);
            if archive {
                file = npz(&[("stamps", file)]);
            }
            let end = (at + bytes.len()).min(file.len());
            file[at..end].copy_from_slice(&bytes[..end - at]);
            file.truncate(file.len().min(cut.max(1)));
            let name = if archive { "fuzz.npz" } else { "fuzz.npy" };
            let path = write(dir.path(), name, &file);
            if let Err(e) = read_numpy(&path, DuplicatePolicy::Refuse) {
                prop_assert!(!e.to_string().contains('\n'));
            }
        }
    }
}
