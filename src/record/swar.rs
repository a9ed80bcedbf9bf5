//! Eight bytes compared at once in one word: the live map's insert queue, the size tables'
//! buckets and their insert queue each look for a tag byte among eight with it.

/// One in every byte.
const EACH_BYTE: u64 = 0x0101_0101_0101_0101;
const LOW_7_BITS: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The top bit of every byte of `x` that is 0, and no other bit. (The shorter
/// `(x - EACH_BYTE) & !x` also marks some bytes above a zero one, through the borrow.)
#[inline]
pub fn zero_bytes(x: u64) -> u64 {
    // A byte's top bit ends up set exactly when the byte was not 0: no carry crosses
    // bytes, as 0x7F + 0x7F < 0x100.
    !(((x & LOW_7_BITS) + LOW_7_BITS) | x) & HIGH_BITS
}

/// The top bit of every byte of `word` equal to `byte`.
#[inline]
pub fn bytes_equal(word: u64, byte: u8) -> u64 {
    zero_bytes(word ^ (u64::from(byte) * EACH_BYTE))
}

/// The first byte `i` marked in `marks` (the top bit of byte `i` set, as the functions
/// above mark them) for which `is(i)` holds: each tag match is only a candidate, which the
/// caller confirms against the full key.
#[inline]
pub fn first_marked(mut marks: u64, mut is: impl FnMut(usize) -> bool) -> Option<usize> {
    while marks != 0 {
        let i = (marks.trailing_zeros() / 8) as usize;
        if is(i) {
            return Some(i);
        }
        marks &= marks - 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Exactly the bytes a byte-by-byte loop finds, with bytes drawn to repeat.
        #[test]
        fn finds_exactly_the_equal_bytes(bytes in proptest::array::uniform8(prop_oneof![Just(0u8), Just(1), Just(0x80), any::<u8>()]), byte in prop_oneof![Just(0u8), Just(1), Just(0x80), any::<u8>()]) {
            let word = u64::from_le_bytes(bytes);
            let want: u64 = (0..8).filter(|&i| bytes[i] == byte).map(|i| 0x80u64 << (8 * i)).sum();
            prop_assert_eq!(bytes_equal(word, byte), want);
            let zeros: u64 = (0..8).filter(|&i| bytes[i] == 0).map(|i| 0x80u64 << (8 * i)).sum();
            prop_assert_eq!(zero_bytes(word), zeros);
            // The first equal byte that is also odd, as a loop over the bytes finds it.
            let first = (0..8).find(|&i| bytes[i] == byte && bytes[i] % 2 == 1);
            prop_assert_eq!(first_marked(bytes_equal(word, byte), |i| bytes[i] % 2 == 1), first);
        }
    }
}
