//! Property-based fuzzing of the CSV reader: a valid candidate set with random byte-level
//! damage (deleted spans, inserted separators, quotes, signs, non-UTF-8 bytes, truncation) is
//! either read or refused with a one-line error naming a file; it never panics.
//!
//! CI runs a few dozen cases; `PROPTEST_CASES=20000 cargo test -p ingest --test fuzz_csv`
//! runs a longer campaign (see the README's reliability section).

mod common;

use hits_core::config::{DataConfig, Layout, SplitConfig};
use proptest::prelude::*;

use common::{CHANNEL_FILES, write_split};

/// Bytes that matter to a CSV parser and a float parser.
const ALPHABET: &[u8] = b",,,\n\n\r\"-+.eE0123456789nNaIiNf \t\xff\xc3";

#[derive(Debug, Clone)]
enum Damage {
    Delete { at: usize, len: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Overwrite { at: usize, bytes: Vec<u8> },
    Truncate { at: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    let bytes = prop::collection::vec(prop::sample::select(ALPHABET), 1..6);
    prop_oneof![
        (any::<usize>(), 1..40usize).prop_map(|(at, len)| Damage::Delete { at, len }),
        (any::<usize>(), bytes.clone()).prop_map(|(at, bytes)| Damage::Insert { at, bytes }),
        (any::<usize>(), bytes).prop_map(|(at, bytes)| Damage::Overwrite { at, bytes }),
        any::<usize>().prop_map(|at| Damage::Truncate { at }),
    ]
}

fn apply(text: &mut Vec<u8>, damage: &Damage) {
    let len = text.len().max(1);
    match damage {
        Damage::Delete { at, len: n } => {
            let start = at % len;
            let end = (start + n).min(text.len());
            text.drain(start.min(end)..end);
        }
        Damage::Insert { at, bytes } => {
            let at = at % (text.len() + 1);
            text.splice(at..at, bytes.iter().copied());
        }
        Damage::Overwrite { at, bytes } => {
            let start = at % len;
            for (i, b) in bytes.iter().enumerate() {
                if let Some(slot) = text.get_mut(start + i) {
                    *slot = *b;
                }
            }
        }
        Damage::Truncate { at } => text.truncate(at % len),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn damaged_csvs_are_read_or_refused_in_one_line(
        plain in any::<bool>(),
        file in 0..5usize,
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let layout = if plain { Layout::Plain } else { Layout::IdHeader };
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), 3, layout);
        let name = CHANNEL_FILES.get(file).copied().unwrap_or("labels.csv");
        let path = dir.path().join(name);
        let mut text = std::fs::read(&path).unwrap();
        for d in &damages {
            apply(&mut text, d);
        }
        std::fs::write(&path, &text).unwrap();

        let config = DataConfig { layout, ..DataConfig::default() };
        let split = SplitConfig { dir: dir.path().to_path_buf(), labelled: true };
        if let Err(error) = ingest::read_split(&config, "train", &split, 2) {
            let message = error.to_string();
            prop_assert!(!message.is_empty());
            prop_assert!(!message.contains('\n'), "multi-line error: {message}");
            prop_assert!(message.contains(".csv"), "error names no file: {message}");
        }
    }
}
