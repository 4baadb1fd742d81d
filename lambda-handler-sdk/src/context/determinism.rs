//! What handlers need instead of the clock, random numbers and log lines, so that replays
//! agree with the first attempt: a recorded `now`, random numbers seeded from the invocation
//! and the caller's place in the program, and whether the code is still replaying.

use durable_protocol::{InvocationId, OpPath};

/// Random numbers that replay identically: seeded from the invocation id, the scope and how
/// many generators the scope made before. Not for secrets (the seed is predictable); make
/// those in a `ctx.run` step.
#[derive(Debug, Clone)]
pub struct DurableRng {
    state: u64,
}

impl DurableRng {
    pub(crate) fn seeded(id: &InvocationId, scope: &OpPath, seq: u32) -> Self {
        // FNV-1a over the parts: stable across processes, platforms and versions.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                hash = (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        eat(id.as_str().as_bytes());
        for seg in scope.segments() {
            eat(&seg.to_le_bytes());
        }
        eat(b"/");
        eat(&seq.to_le_bytes());
        Self { state: hash }
    }

    /// The next 64 random bits (splitmix64).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `[0, bound)`; `bound` must not be 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "DurableRng::below(0)");
        // Multiply-shift: unbiased enough for sampling, no division in the loop.
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A random (version 4) UUID in its usual text form.
    pub fn uuid(&mut self) -> String {
        let (hi, lo) = (self.next_u64(), self.next_u64());
        let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
        let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_repeat_per_place_and_differ_between_places() {
        let svc = durable_protocol::ServiceName::new("svc").unwrap();
        let id = InvocationId::derived(&svc, &["rng"]);
        let root = OpPath::root();
        let a: Vec<u64> = (0..4)
            .map(|_| DurableRng::seeded(&id, &root, 0).next_u64())
            .collect();
        assert!(
            a.windows(2).all(|w| w[0] == w[1]),
            "same place, same numbers"
        );
        let b = DurableRng::seeded(&id, &root, 1).next_u64();
        let c = DurableRng::seeded(&id, &root.child(0), 0).next_u64();
        let other = InvocationId::derived(&svc, &["other"]);
        let d = DurableRng::seeded(&other, &root, 0).next_u64();
        assert!(a[0] != b && a[0] != c && a[0] != d && b != c);
        let mut rng = DurableRng::seeded(&id, &root, 0);
        let uuid = rng.uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{uuid}");
        for _ in 0..1000 {
            let f = rng.next_f64();
            assert!((0.0..1.0).contains(&f));
            assert!(rng.below(7) < 7);
        }
    }
}
