// SPDX-License-Identifier: GPL-2.0

//! Reproducible data patterns: the bytes written at an offset depend on a seed and the
//! offset, so data left over from an earlier write never matches by chance.

/// Fills `buf` with the pattern for `seed` at device offset `offset`.
pub fn fill(buf: &mut [u8], seed: u64, offset: u64) {
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let word = mix(seed, offset + 8 * i as u64).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// Returns the offset of the first byte of `buf` that differs from the pattern.
pub fn first_mismatch(buf: &[u8], seed: u64, offset: u64) -> Option<usize> {
    let mut expected = vec![0u8; buf.len()];
    fill(&mut expected, seed, offset);
    buf.iter().zip(&expected).position(|(a, b)| a != b)
}

/// splitmix64 of the seed and the position.
fn mix(seed: u64, pos: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(pos.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_on_seed_and_offset() {
        let mut a = vec![0u8; 64];
        let mut b = vec![0u8; 64];
        fill(&mut a, 1, 0);
        fill(&mut b, 2, 0);
        assert_ne!(a, b);
        fill(&mut b, 1, 4096);
        assert_ne!(a, b);
        assert_eq!(first_mismatch(&a, 1, 0), None);
        a[17] ^= 1;
        assert_eq!(first_mismatch(&a, 1, 0), Some(17));
    }

    #[test]
    fn odd_lengths() {
        let mut a = vec![0u8; 13];
        fill(&mut a, 3, 8);
        let mut b = vec![0u8; 21];
        fill(&mut b, 3, 0);
        assert_eq!(a[..], b[8..]);
    }
}
