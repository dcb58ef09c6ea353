//! Identifiers we mint: tags, branches, Call-IDs, SDP session ids. A seeded SplitMix64
//! generator keeps tests deterministic; the driver must seed it from the OS (e.g.
//! `rand::random()`), because tags and branches should not be guessable by off-path attackers.

use crate::message::BRANCH_MAGIC;

#[derive(Debug, Clone)]
pub(crate) struct IdGen {
    state: u64,
}

impl IdGen {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// 16 lowercase hex digits.
    pub(crate) fn token(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }

    pub(crate) fn tag(&mut self) -> String {
        self.token()
    }

    pub(crate) fn branch(&mut self) -> String {
        format!("{BRANCH_MAGIC}{}", self.token())
    }

    pub(crate) fn call_id(&mut self, host: &str) -> String {
        format!("{}@{host}", self.token())
    }

    /// A value below 2**31, as RFC 3261 §8.1.1.5 suggests for initial CSeq numbers.
    pub(crate) fn initial_cseq(&mut self) -> u32 {
        (self.next_u64() & 0x7fff_ffff) as u32 % 100_000 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        let mut a = IdGen::new(42);
        let mut b = IdGen::new(42);
        assert_eq!(a.branch(), b.branch());
        assert_ne!(a.tag(), a.tag());
        assert!(a.branch().starts_with("z9hG4bK"));
        assert!(a.initial_cseq() < 1 << 31);
    }
}
