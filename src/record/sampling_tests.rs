//! Sampled mode: the total stays exact, per-stack estimates converge on the truth.

use super::{sample_weight, Recorder};
use crate::format::Meta;

#[test]
fn weights_are_size_over_sampling_probability() {
    assert_eq!(sample_weight(0, 1000), 0);
    assert_eq!(sample_weight(100, 0), 100);
    // Huge blocks are sampled with probability ~1 and count their size.
    assert_eq!(sample_weight(1 << 30, 4096), 1 << 30);
    // Tiny blocks count about the sampling interval.
    let w = sample_weight(1, 1 << 20);
    assert!((w as i64 - (1 << 20)).abs() <= 1, "{w}");
}

/// A deterministic stand-in for the preload's per-thread sampler.
fn sampler(rate: u64) -> impl FnMut(u64) -> bool {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let u = ((x.wrapping_mul(0x2545_F491_4F6C_DD1D)) >> 11) as f64 / (1u64 << 53) as f64;
        (-(u.max(1e-300)).ln() * rate as f64) as i64 + 1
    };
    let mut left = next();
    move |size| {
        if left > size as i64 {
            left -= size as i64;
            false
        } else {
            left = next();
            true
        }
    }
}

#[test]
fn sampled_peak_total_is_exact_and_site_estimates_are_close() {
    // Relative error goes as sqrt(rate / bytes held): ~1500 samples per stack here.
    let rate = 256;
    let mut exact = Recorder::new();
    let mut sampled = Recorder::new();
    let unsampled = sampled.intern(&[u64::MAX - 1]);
    sampled.set_sampling(rate, unsampled);
    let stacks: Vec<_> = (0..4u64).map(|i| [0x1000 + i]).collect();
    for s in &stacks {
        exact.intern(s);
        sampled.intern(s);
    }
    let mut sample = sampler(rate);
    // Stack i holds blocks of size 100 * (i + 1), in proportions 1:2:3:4 of count; then a
    // phase frees half of everything.
    let mut addr = 0x10_0000u64;
    let mut live = Vec::new();
    for round in 0..40_000u64 {
        let i = (round % 10) as usize;
        let i = match i {
            0 => 0,
            1 | 2 => 1,
            3..=5 => 2,
            _ => 3,
        };
        let size = 100 * (i as u64 + 1);
        let id_exact = exact.intern(&stacks[i]);
        let id_sampled = if sample(size) {
            sampled.intern(&stacks[i])
        } else {
            unsampled
        };
        exact.on_alloc(addr, size, id_exact, round);
        sampled.on_alloc(addr, size, id_sampled, round);
        live.push(addr);
        addr += 1024;
    }
    for (k, a) in live.iter().enumerate() {
        if k % 2 == 0 {
            exact.on_free(*a, 50_000);
            sampled.on_free(*a, 50_000);
        }
    }
    assert_eq!(sampled.peak(), exact.peak());
    assert_eq!(sampled.total(), exact.total());
    sampled.check_consistency().unwrap();
    let pe = exact.to_profile(Meta::default(), Vec::new());
    let ps = sampled.to_profile(Meta::default(), Vec::new());
    let bytes = |p: &crate::format::Profile, frame: u64| -> u64 {
        p.peak
            .iter()
            .filter(|s| p.stacks[s.stack as usize].frames == [frame])
            .map(|s| s.bytes)
            .sum()
    };
    for i in 0..4u64 {
        let e = bytes(&pe, 0x1000 + i) as f64;
        let s = bytes(&ps, 0x1000 + i) as f64;
        let err = (s - e).abs() / e;
        assert!(
            err < 0.10,
            "stack {i}: exact {e}, sampled {s}, error {err:.3}"
        );
    }
}
