//! Direct f32 convolution for stride 1 (any padding, dilation and groups), with SIMD over output
//! positions and a register block of output channels: the fast forward of [`super::conv`].
//!
//! Same formula as the module `conv`: `y[n, o, z] = b[o] + sum_{c, k} w[o, c, k] x[n, c, z - p + k d]`.
//!
//! How: each sample's input is copied once into a zero-padded buffer (`Dp x Hp x Wp` per channel).
//! Output depth slice `z` is then computed as one line of `OH * Wp` *extended* positions
//! `q = y * Wp + x`, of which those with `x < OW` are real outputs: with the padding materialised,
//! kernel offset `k` reads the input at `q + off(k)`, `off(k) = ((z + kz dz) Hp + ky dy) Wp + kx dx`,
//! contiguous along the line across output rows. A micro-kernel keeps `OB` output channels by `VN`
//! vectors of positions in registers and, for every input channel and kernel offset, loads `VN`
//! input vectors and broadcasts `OB` weights (packed `[c][k][OB]` so they are consecutive): `OB * VN`
//! fused multiply-adds per `OB + VN` loads. The extended line costs `Wp / OW - 1` extra work (3% at
//! 64^3 with padding 1) and needs no bounds checks.

use rayon::prelude::*;

use super::conv::ConvGeometry;
use super::simd::Isa;

/// Whether [`conv_forward_direct`] handles `g`.
pub fn direct_supported(g: &ConvGeometry) -> bool {
    g.stride == [1, 1, 1]
}

/// What a task reads: the padded sample, the packed weights and the line geometry.
struct Line<'a> {
    /// The padded input of one sample, `Cin` planes of `plane` values.
    xpad: &'a [f32],
    plane: usize,
    /// Input offsets of the kernel taps within a plane, relative to the line start.
    taps: &'a [usize],
    in_per_group: usize,
    /// Extended positions computed per line: `(OH - 1) * Wp + OW`.
    len: usize,
}

/// Computes `OB` output channels of one extended line into `out` (`OB x line.len`).
///
/// # Safety
/// The CPU supports `S`'s instruction set; `x_start + taps[k] + line.len <= xpad.len()` for
/// every tap within each of the `in_per_group` planes from `x_start`; `w` holds
/// `in_per_group * taps.len() * OB` values and `out` `OB * line.len`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn line_kernel<S: super::simd::F32Simd, const OB: usize, const VN: usize>(
    line: &Line,
    x_start: usize,
    w: &[f32],
    bias: [f32; OB],
    out: &mut [f32],
) {
    let block = VN * S::LANES;
    let mut q = 0;
    while q + block <= line.len {
        micro_block::<S, OB, VN>(line, x_start, w, bias, out, q, S::LANES);
        q += block;
    }
    while q < line.len {
        let lanes = S::LANES.min(line.len - q);
        micro_block::<S, OB, 1>(line, x_start, w, bias, out, q, lanes);
        q += lanes;
    }
}

/// `OB x VN` vectors of outputs at positions `q..`, the last vector `last_lanes` wide.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
// Index loops over the register block read clearest and unroll fully (OB and VN are constants).
#[allow(clippy::needless_range_loop)]
unsafe fn micro_block<S: super::simd::F32Simd, const OB: usize, const VN: usize>(
    line: &Line,
    x_start: usize,
    w: &[f32],
    bias: [f32; OB],
    out: &mut [f32],
    q: usize,
    last_lanes: usize,
) {
    let lanes = |v: usize| if v + 1 == VN { last_lanes } else { S::LANES };
    let mut acc: [[S::V; VN]; OB] = std::array::from_fn(|j| [S::splat(bias[j]); VN]);
    let taps = line.taps.len();
    let x = line.xpad.as_ptr().add(x_start + q);
    for c in 0..line.in_per_group {
        let xc = x.add(c * line.plane);
        let wc = w.as_ptr().add(c * taps * OB);
        for (k, &off) in line.taps.iter().enumerate() {
            let mut xv = [S::splat(0.0); VN];
            for v in 0..VN {
                xv[v] = S::load(xc.add(off + v * S::LANES), lanes(v));
            }
            let wk = wc.add(k * OB);
            for j in 0..OB {
                let wj = S::splat(*wk.add(j));
                for v in 0..VN {
                    acc[j][v] = S::fma(wj, xv[v], acc[j][v]);
                }
            }
        }
    }
    for j in 0..OB {
        for v in 0..VN {
            S::store(
                out.as_mut_ptr().add(j * line.len + q + v * S::LANES),
                acc[j][v],
                lanes(v),
            );
        }
    }
}

/// A line kernel instantiated for one instruction set: `(line, x_start, weights, bias, out)`.
type LineKernel = unsafe fn(&Line, usize, &[f32], &[f32], &mut [f32]);

/// Output channels per register block and vectors per block for each instruction set: 24
/// accumulators of 32 zmm registers, 12 of 16 ymm.
const AVX512_OB: usize = 8;
const AVX2_OB: usize = 4;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn line_avx512(line: &Line, x_start: usize, w: &[f32], bias: &[f32], out: &mut [f32]) {
    let bias: [f32; AVX512_OB] = bias.try_into().expect("one bias per block channel");
    line_kernel::<super::simd::Avx512, AVX512_OB, 3>(line, x_start, w, bias, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn line_avx2(line: &Line, x_start: usize, w: &[f32], bias: &[f32], out: &mut [f32]) {
    let bias: [f32; AVX2_OB] = bias.try_into().expect("one bias per block channel");
    line_kernel::<super::simd::Avx2, AVX2_OB, 3>(line, x_start, w, bias, out)
}

/// `w` regrouped as `[group][block][c][k][OB]`, output channels past the group's end zero.
fn pack_weights(g: &ConvGeometry, w: &[f32], ob: usize) -> Vec<f32> {
    let (og, cg, taps) = (
        g.out_channels / g.groups,
        g.in_channels / g.groups,
        g.kernel.iter().product::<usize>(),
    );
    let blocks = og.div_ceil(ob);
    let mut packed = vec![0.0; g.groups * blocks * cg * taps * ob];
    for gi in 0..g.groups {
        for o in 0..og {
            let (b, j) = (o / ob, o % ob);
            for c in 0..cg {
                for k in 0..taps {
                    let dst = (((gi * blocks + b) * cg + c) * taps + k) * ob + j;
                    packed[dst] = w[((gi * og + o) * cg + c) * taps + k];
                }
            }
        }
    }
    packed
}

/// `y = conv(x, w) + b` for stride 1 with the SIMD direct kernel of `isa`.
///
/// Panics if `g` is not [`direct_supported`] or the buffers do not match it (internal invariants).
pub fn conv_forward_direct(isa: Isa, g: &ConvGeometry, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    assert!(direct_supported(g), "conv_forward_direct needs stride 1");
    assert!(
        x.len() == g.x_len() && w.len() == g.w_len() && y.len() == g.y_len(),
        "conv_forward_direct: sizes"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let (ob, kernel): (usize, LineKernel) = match isa {
            Isa::Avx512 => (AVX512_OB, line_avx512),
            Isa::Avx2Fma => (AVX2_OB, line_avx2),
        };
        forward_with(g, x, w, bias, y, ob, kernel);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, x, w, bias, y);
        unreachable!("no SIMD instruction set is detected off x86_64");
    }
}

/// A pointer that parallel tasks write through at disjoint places.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every task writes a distinct (channel, depth slice) region; see `forward_with`.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

#[cfg(target_arch = "x86_64")]
fn forward_with(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    ob: usize,
    kernel: LineKernel,
) {
    let [dp, hp, wp] = std::array::from_fn::<usize, 3, _>(|a| g.input[a] + 2 * g.padding[a]);
    let plane = dp * hp * wp;
    let [od, oh, ow] = g.output();
    let (cg, og) = (g.in_channels / g.groups, g.out_channels / g.groups);
    let taps: Vec<usize> = (0..g.kernel.iter().product::<usize>())
        .map(|k| {
            let (kz, ky, kx) = (
                k / (g.kernel[1] * g.kernel[2]),
                k / g.kernel[2] % g.kernel[1],
                k % g.kernel[2],
            );
            (kz * g.dilation[0] * hp + ky * g.dilation[1]) * wp + kx * g.dilation[2]
        })
        .collect();
    let packed = pack_weights(g, w, ob);
    let blocks = og.div_ceil(ob);
    let block_weights = cg * taps.len() * ob;
    let len = (oh - 1) * wp + ow;
    let in_plane = g.input.iter().product::<usize>();
    let out_plane = od * oh * ow;
    let mut xpad = vec![0.0f32; g.in_channels * plane];
    let out = SharedOut(y.as_mut_ptr());
    for n in 0..g.batch {
        xpad.par_chunks_mut(plane).enumerate().for_each(|(c, dst)| {
            let src = &x[(n * g.in_channels + c) * in_plane..][..in_plane];
            for (zi, slab) in src.chunks(g.input[1] * g.input[2]).enumerate() {
                for (yi, row) in slab.chunks(g.input[2]).enumerate() {
                    let at = ((zi + g.padding[0]) * hp + yi + g.padding[1]) * wp + g.padding[2];
                    dst[at..at + row.len()].copy_from_slice(row);
                }
            }
        });
        let line = Line {
            xpad: &xpad,
            plane,
            taps: &taps,
            in_per_group: cg,
            len,
        };
        (0..g.groups * blocks * od).into_par_iter().for_each_init(
            || vec![0.0f32; ob * len],
            |scratch, task| {
                let (z, b, gi) = (task % od, task / od % blocks, task / od / blocks);
                let channels = ob.min(og - b * ob);
                let first = gi * og + b * ob;
                let mut bias_block = vec![0.0f32; ob];
                if let Some(bias) = bias {
                    bias_block[..channels].copy_from_slice(&bias[first..first + channels]);
                }
                let w_block = &packed[(gi * blocks + b) * block_weights..][..block_weights];
                let x_start = gi * cg * plane + z * hp * wp;
                // SAFETY: `isa` was detected on this CPU by the caller; the line's reads end at
                // `x_start + taps.max + len <= x_start + plane` inside each of the group's planes.
                unsafe { kernel(&line, x_start, w_block, &bias_block, scratch) };
                for j in 0..channels {
                    let base = (n * g.out_channels + first + j) * out_plane + z * oh * ow;
                    for r in 0..oh {
                        let src = &scratch[j * len + r * wp..][..ow];
                        // SAFETY: task (gi, b, z) alone writes channels first..first + channels at
                        // depth z of sample n; the range lies inside y (checked length above).
                        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), out.at(base + r * ow), ow) };
                    }
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::conv::conv_forward_reference;
    use crate::cpu::test_values::values;
    use proptest::prelude::*;

    fn isas() -> Vec<Isa> {
        let mut found = vec![];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                found.push(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                found.push(Isa::Avx2Fma);
            }
        }
        found
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn direct_matches_the_reference(
            batch in 1usize..3, cg in 1usize..5, og in 1usize..11, groups in 1usize..3,
            kernel in proptest::array::uniform3(1usize..4), padding in proptest::array::uniform3(0usize..3),
            dilation in proptest::array::uniform3(1usize..3), extra in proptest::array::uniform3(0usize..20),
            with_bias in any::<bool>(),
        ) {
            let mut g = ConvGeometry {
                batch, in_channels: cg * groups, out_channels: og * groups, groups, input: [0; 3], kernel,
                stride: [1; 3], padding, dilation,
            };
            g.input = std::array::from_fn(|a| (g.dilation[a] * (g.kernel[a] - 1) + 1 + extra[a]).saturating_sub(2 * padding[a]).max(1));
            prop_assume!(g.validate().is_ok());
            let x: Vec<f32> = values(g.x_len(), 1).iter().map(|&v| v as f32).collect();
            let w: Vec<f32> = values(g.w_len(), 2).iter().map(|&v| v as f32).collect();
            let b: Vec<f32> = values(g.out_channels, 3).iter().map(|&v| v as f32).collect();
            let bias = with_bias.then_some(&b[..]);
            let mut expected = vec![0.0f32; g.y_len()];
            conv_forward_reference(&g, &x, &w, bias, &mut expected);
            for isa in isas() {
                let mut y = vec![f32::NAN; g.y_len()];
                conv_forward_direct(isa, &g, &x, &w, bias, &mut y);
                for (a, e) in y.iter().zip(&expected) {
                    prop_assert!((a - e).abs() <= 1e-4 * (1.0 + e.abs()), "{isa:?}: {a} vs {e} in {g:?}");
                }
            }
        }
    }
}
