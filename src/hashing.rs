//! The hash maps of the permission cache, keyed by short names.
//!
//! std's default hasher (SipHash) resists collision attacks on keys an
//! attacker chooses; the cache is keyed by the catalog's own names and keys,
//! written by administrators, and a lookup is most of what `fluent_can`
//! costs. This is the multiply-rotate hash rustc uses (FxHash), a few
//! instructions per word.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with the fast hasher.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::FastMap;

    #[test]
    fn names_that_share_a_prefix_or_differ_in_length_are_different_keys() {
        let mut map = FastMap::default();
        for key in [
            "",
            "a",
            "ab",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghi",
            "ann",
            "anna",
        ] {
            map.insert(key.to_owned(), key.len());
        }
        assert_eq!(map.len(), 8);
        assert_eq!(map.get("abcdefgh\0"), Some(&9));
        assert_eq!(map.get("anna"), Some(&4));
        assert_eq!(map.get("annb"), None);
    }
}
