//! The dihedral group D4 on stamps: the 4 rotations by 90 degrees and their mirror images.
//! A real transient stays real under any of them, so they are free training data.

use hits_core::{STAMP_PIXELS, STAMP_SIDE, TENSOR_LEN};

/// Number of D4 elements.
pub const D4: u8 = 8;

/// Source pixel `(row, col)` for output pixel `(r, c)` under element `t` (0 = identity,
/// 1..=3 = rotations by 90/180/270 degrees, 4..=7 = those followed by a left-right mirror).
fn source(t: u8, r: usize, c: usize) -> (usize, usize) {
    let n = STAMP_SIDE - 1;
    let c = if t >= 4 { n - c } else { c };
    match t % 4 {
        0 => (r, c),
        1 => (c, n - r),
        2 => (n - r, n - c),
        _ => (n - c, r),
    }
}

/// Write element `t` of D4 applied to one (4, 21, 21) stamp into `out`.
pub fn transform(stamp: &[f32], t: u8, out: &mut [f32]) {
    debug_assert_eq!(stamp.len(), TENSOR_LEN);
    if t == 0 {
        out.copy_from_slice(stamp);
        return;
    }
    for (src, dst) in stamp
        .chunks_exact(STAMP_PIXELS)
        .zip(out.chunks_exact_mut(STAMP_PIXELS))
    {
        for r in 0..STAMP_SIDE {
            for c in 0..STAMP_SIDE {
                let (sr, sc) = source(t, r, c);
                dst[r * STAMP_SIDE + c] = src[sr * STAMP_SIDE + sc];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Vec<f32> {
        (0..TENSOR_LEN).map(|i| i as f32).collect()
    }

    #[test]
    fn elements_are_distinct_permutations() {
        let s = stamp();
        let mut seen = Vec::new();
        for t in 0..D4 {
            let mut out = vec![0.0; TENSOR_LEN];
            transform(&s, t, &mut out);
            let mut sorted = out.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(sorted, s, "element {t} is not a permutation");
            assert!(!seen.contains(&out), "element {t} repeats another");
            seen.push(out);
        }
    }

    #[test]
    fn four_quarter_turns_are_identity() {
        let s = stamp();
        let mut x = s.clone();
        let mut out = vec![0.0; TENSOR_LEN];
        for _ in 0..4 {
            transform(&x, 1, &mut out);
            std::mem::swap(&mut x, &mut out);
        }
        assert_eq!(x, s);
        transform(&s, 1, &mut out);
        assert_ne!(out, s);
    }
}
