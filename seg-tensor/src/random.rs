//! Counter-based random numbers: value `i` of a tensor drawn with `seed` depends on `(seed, i)` only,
//! so results are reproducible across runs and thread counts.

/// SplitMix64's finaliser: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn bits(seed: u64, counter: u64) -> u64 {
    mix(mix(seed.wrapping_add(0x9e37_79b9_7f4a_7c15)) ^ counter.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Uniform in `[0, 1)` with 53 random bits.
pub fn uniform(seed: u64, i: u64) -> f64 {
    (bits(seed, i) >> 11) as f64 / (1u64 << 53) as f64
}

/// Standard normal by the Box-Muller transform of two independent uniforms.
pub fn normal(seed: u64, i: u64) -> f64 {
    let u1 = 1.0 - uniform(seed, 2 * i); // in (0, 1]
    let u2 = uniform(seed, 2 * i + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_right() {
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|i| normal(7, i)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.02, "mean {mean} var {var}");
        let us: Vec<f64> = (0..n).map(|i| uniform(3, i)).collect();
        assert!(us.iter().all(|&u| (0.0..1.0).contains(&u)));
        assert!((us.iter().sum::<f64>() / n as f64 - 0.5).abs() < 0.01);
        assert_ne!(uniform(1, 0), uniform(2, 0));
    }
}
