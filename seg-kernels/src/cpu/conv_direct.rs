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
use super::SharedOut;

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
const MAX_OB: usize = if AVX512_OB > AVX2_OB { AVX512_OB } else { AVX2_OB };

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

/// Padded size `(Dp, Hp, Wp)` of an input plane.
fn padded(g: &ConvGeometry) -> [usize; 3] {
    std::array::from_fn(|a| g.input[a] + 2 * g.padding[a])
}

/// Copies sample `n` of `x` into the interior of `xpad` (`Cin` padded planes; the border must be
/// zero and stays so).
fn pad_sample(g: &ConvGeometry, x: &[f32], n: usize, xpad: &mut [f32]) {
    let [_, hp, wp] = padded(g);
    let in_plane = g.input.iter().product::<usize>();
    let plane = xpad.len() / g.in_channels;
    xpad.par_chunks_mut(plane).enumerate().for_each(|(c, dst)| {
        let src = &x[(n * g.in_channels + c) * in_plane..][..in_plane];
        for (zi, slab) in src.chunks(g.input[1] * g.input[2]).enumerate() {
            for (yi, row) in slab.chunks(g.input[2]).enumerate() {
                let at = ((zi + g.padding[0]) * hp + yi + g.padding[1]) * wp + g.padding[2];
                dst[at..at + row.len()].copy_from_slice(row);
            }
        }
    });
}

/// Offset of kernel tap `k` in a padded plane of rows `wp` and slabs `hp * wp`.
fn tap_offset(g: &ConvGeometry, k: usize, hp: usize, wp: usize) -> usize {
    let (kz, ky, kx) = (
        k / (g.kernel[1] * g.kernel[2]),
        k / g.kernel[2] % g.kernel[1],
        k % g.kernel[2],
    );
    (kz * g.dilation[0] * hp + ky * g.dilation[1]) * wp + kx * g.dilation[2]
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
    let [dp, hp, wp] = padded(g);
    let plane = dp * hp * wp;
    let [od, oh, ow] = g.output();
    let (cg, og) = (g.in_channels / g.groups, g.out_channels / g.groups);
    let taps: Vec<usize> = (0..g.kernel.iter().product::<usize>())
        .map(|k| tap_offset(g, k, hp, wp))
        .collect();
    let packed = pack_weights(g, w, ob);
    let blocks = og.div_ceil(ob);
    let block_weights = cg * taps.len() * ob;
    let len = (oh - 1) * wp + ow;
    let out_plane = od * oh * ow;
    let mut xpad = vec![0.0f32; g.in_channels * plane];
    let out = SharedOut::new(y);
    for n in 0..g.batch {
        pad_sample(g, x, n, &mut xpad);
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
                let mut bias_block = [0.0f32; MAX_OB];
                if let Some(bias) = bias {
                    bias_block[..channels].copy_from_slice(&bias[first..first + channels]);
                }
                let w_block = &packed[(gi * blocks + b) * block_weights..][..block_weights];
                let x_start = gi * cg * plane + z * hp * wp;
                // SAFETY: `isa` was detected on this CPU by the caller; the line's reads end at
                // `x_start + taps.max + len <= x_start + plane` inside each of the group's planes.
                unsafe { kernel(&line, x_start, w_block, &bias_block[..ob], scratch) };
                for j in 0..channels {
                    let base = (n * g.out_channels + first + j) * out_plane + z * oh * ow;
                    for r in 0..oh {
                        let src = &scratch[j * len + r * wp..][..ow];
                        // SAFETY: task (gi, b, z) alone writes channels first..first + channels at
                        // depth z of sample n.
                        unsafe { out.write(base + r * ow, src) };
                    }
                }
            },
        );
    }
}

/// Whether [`conv_backward_data_direct`] handles `g`: stride 1 and padding no larger than the
/// dilated kernel's reach, `p <= d (k - 1)`, so that the adjoint is again a padded convolution.
pub fn backward_data_supported(g: &ConvGeometry) -> bool {
    direct_supported(g) && (0..3).all(|a| g.padding[a] <= g.dilation[a] * (g.kernel[a] - 1))
}

/// `dx` from `dy` for stride 1, as the direct convolution of `dy` with the flipped, transposed
/// kernel: `dx[n, c, i] = sum_{o, k} w[o, c, K-1-k] dy_pad[n, o, i + k d]` with `dy` padded by
/// `d (k - 1) - p` on each side.
pub fn conv_backward_data_direct(isa: Isa, g: &ConvGeometry, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    assert!(
        backward_data_supported(g),
        "conv_backward_data_direct: unsupported geometry"
    );
    let (cg, og, taps) = (
        g.in_channels / g.groups,
        g.out_channels / g.groups,
        g.kernel.iter().product::<usize>(),
    );
    let mut flipped = vec![0.0f32; w.len()];
    for gi in 0..g.groups {
        for o in 0..og {
            for c in 0..cg {
                for k in 0..taps {
                    flipped[((gi * cg + c) * og + o) * taps + (taps - 1 - k)] = w[((gi * og + o) * cg + c) * taps + k];
                }
            }
        }
    }
    let adjoint = ConvGeometry {
        batch: g.batch,
        in_channels: g.out_channels,
        out_channels: g.in_channels,
        groups: g.groups,
        input: g.output(),
        kernel: g.kernel,
        stride: [1; 3],
        padding: std::array::from_fn(|a| g.dilation[a] * (g.kernel[a] - 1) - g.padding[a]),
        dilation: g.dilation,
    };
    conv_forward_direct(isa, &adjoint, dy, &flipped, None, dx);
}

/// Accumulates `out[j][k] += sum_q dy[j][q] * x[q + taps[k]]` for `OB` rows of `dy` (`row` apart)
/// and all taps, over `len` positions: register blocks of `OB` rows by `KB` taps of vector partial
/// sums (taps left over after whole blocks go one at a time), reduced across lanes at the end.
///
/// # Safety
/// The CPU supports `S`'s instruction set; `dy` holds `OB` rows of `len` values `row` apart, `x`
/// holds `taps[k] + len` values for every tap, `out` holds `OB * taps.len()` values.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn weight_kernel<S: super::simd::F32Simd, const OB: usize, const KB: usize>(
    dy: *const f32,
    row: usize,
    x: *const f32,
    len: usize,
    taps: &[usize],
    out: &mut [f32],
) {
    let whole = taps.len() / KB * KB;
    for k0 in (0..whole).step_by(KB) {
        weight_block::<S, OB, KB>(dy, row, x, len, taps, k0, out);
    }
    for k0 in whole..taps.len() {
        weight_block::<S, OB, 1>(dy, row, x, len, taps, k0, out);
    }
}

/// The `OB x KB` block of [`weight_kernel`] for taps `k0..k0 + KB`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::needless_range_loop)] // register-block index loops, fully unrolled
unsafe fn weight_block<S: super::simd::F32Simd, const OB: usize, const KB: usize>(
    dy: *const f32,
    row: usize,
    x: *const f32,
    len: usize,
    taps: &[usize],
    k0: usize,
    out: &mut [f32],
) {
    let mut acc = [[S::splat(0.0); KB]; OB];
    let off: [usize; KB] = taps[k0..k0 + KB].try_into().expect("KB taps from k0");
    let mut d = [S::splat(0.0); OB];
    let mut q = 0;
    while q < len {
        let lanes = S::LANES.min(len - q);
        for j in 0..OB {
            d[j] = S::load(dy.add(j * row + q), lanes);
        }
        for t in 0..KB {
            let xv = S::load(x.add(off[t] + q), lanes);
            for j in 0..OB {
                acc[j][t] = S::fma(d[j], xv, acc[j][t]);
            }
        }
        q += lanes;
    }
    let mut lanes_out = [0.0f32; 16];
    for j in 0..OB {
        for t in 0..KB {
            S::store(lanes_out.as_mut_ptr(), acc[j][t], S::LANES);
            out[j * taps.len() + k0 + t] += lanes_out[..S::LANES].iter().sum::<f32>();
        }
    }
}

/// Output channels and taps per register block of the weight-gradient kernel: 3 x 9 of 32 zmm
/// registers, 3 x 3 of 16 ymm (3 x 3 x 3 kernels have 27 taps).
const AVX512_WEIGHT_BLOCK: (usize, usize) = (3, 9);
const AVX2_WEIGHT_BLOCK: (usize, usize) = (3, 3);

/// Positions per pass of the weight-gradient tasks (16 KiB of each row).
const WEIGHT_CHUNK: usize = 4096;

/// [`weight_kernel`] for one instruction set: `(dy, row, x, len, taps, out)`.
type WeightKernel = unsafe fn(*const f32, usize, *const f32, usize, &[usize], &mut [f32]);

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weight_avx512(dy: *const f32, row: usize, x: *const f32, len: usize, taps: &[usize], out: &mut [f32]) {
    const B: (usize, usize) = AVX512_WEIGHT_BLOCK;
    weight_kernel::<super::simd::Avx512, { B.0 }, { B.1 }>(dy, row, x, len, taps, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_avx2(dy: *const f32, row: usize, x: *const f32, len: usize, taps: &[usize], out: &mut [f32]) {
    const B: (usize, usize) = AVX2_WEIGHT_BLOCK;
    weight_kernel::<super::simd::Avx2, { B.0 }, { B.1 }>(dy, row, x, len, taps, out)
}

/// `dw` (overwritten) from `x` and `dy` for stride 1, without im2col: with the input padded and
/// `dy` spread onto the padded grid (`dy_ext`, zero off the real outputs), `dw[o, c, k]` is the dot
/// product of row `o` of `dy_ext` with row `c` of the padded input shifted by tap `k`'s offset. One
/// task per (group, block of output channels, input channel) computes all taps with a SIMD
/// register block (see [`weight_kernel`]); consecutive tasks share their `dy` rows in cache.
pub fn conv_backward_weight_direct(isa: Isa, g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    assert!(direct_supported(g), "conv_backward_weight_direct needs stride 1");
    assert!(
        x.len() == g.x_len() && dy.len() == g.y_len() && dw.len() == g.w_len(),
        "sizes"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let (ob, kernel): (usize, WeightKernel) = match isa {
            Isa::Avx512 => (AVX512_WEIGHT_BLOCK.0, weight_avx512),
            Isa::Avx2Fma => (AVX2_WEIGHT_BLOCK.0, weight_avx2),
        };
        weight_with(g, x, dy, dw, ob, kernel);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, x, dy, dw);
        unreachable!("no SIMD instruction set is detected off x86_64");
    }
}

#[cfg(target_arch = "x86_64")]
fn weight_with(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32], ob: usize, kernel: WeightKernel) {
    let [dp, hp, wp] = padded(g);
    let plane = dp * hp * wp;
    let [od, oh, ow] = g.output();
    let (cg, og) = (g.in_channels / g.groups, g.out_channels / g.groups);
    let taps: Vec<usize> = (0..g.kernel.iter().product::<usize>())
        .map(|k| tap_offset(g, k, hp, wp))
        .collect();
    let blocks = og.div_ceil(ob);
    let len = ((od - 1) * hp + oh - 1) * wp + ow;
    let mut xpad = vec![0.0f32; g.in_channels * plane];
    // Rows of each group padded to whole blocks; the extra rows stay zero.
    let mut dy_ext = vec![0.0f32; g.groups * blocks * ob * len];
    let mut partial = vec![0.0f32; g.groups * blocks * cg * ob * taps.len()];
    for n in 0..g.batch {
        pad_sample(g, x, n, &mut xpad);
        dy_ext.par_chunks_mut(len).enumerate().for_each(|(r, dst)| {
            let (gi, o) = (r / (blocks * ob), r % (blocks * ob));
            if o >= og {
                return;
            }
            let src = &dy[(n * g.out_channels + gi * og + o) * od * oh * ow..][..od * oh * ow];
            for (r, row) in src.chunks(ow).enumerate() {
                let at = ((r / oh) * hp + r % oh) * wp;
                dst[at..at + ow].copy_from_slice(row);
            }
        });
        // Chunks of positions, so that the rows a chunk's tasks share stay in cache.
        for q0 in (0..len).step_by(WEIGHT_CHUNK) {
            let chunk = WEIGHT_CHUNK.min(len - q0);
            partial
                .par_chunks_mut(ob * taps.len())
                .enumerate()
                .for_each(|(task, out)| {
                    let (c, b, gi) = (task % cg, task / cg % blocks, task / cg / blocks);
                    let dy_rows = &dy_ext[(gi * blocks + b) * ob * len..][..ob * len];
                    let x_row = &xpad[(gi * cg + c) * plane..][..plane];
                    // SAFETY: the ISA was detected by the caller; `dy_rows` holds `ob` rows of `len`, and
                    // `taps[k] + q0 + chunk <= plane` for every tap (the last real output reads the last
                    // input).
                    unsafe { kernel(dy_rows.as_ptr().add(q0), len, x_row.as_ptr().add(q0), chunk, &taps, out) };
                });
        }
    }
    for gi in 0..g.groups {
        for o in 0..og {
            for c in 0..cg {
                let (b, j) = (o / ob, o % ob);
                let src = &partial[((gi * blocks + b) * cg + c) * ob * taps.len() + j * taps.len()..][..taps.len()];
                dw[((gi * og + o) * cg + c) * taps.len()..][..taps.len()].copy_from_slice(src);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::conv::{conv_backward_data_reference, conv_backward_weight_reference, conv_forward_reference};
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

    /// A reference computation `f(p, q, r, out)` of the property test.
    type Reference<'a> = &'a dyn Fn(&[f64], &[f64], &[f64], &mut [f64]);

    /// The first element whose f32 value is further from the exact one than f32 summation allows:
    /// `1e-5 * magnitude + 1e-6`, `magnitude` the sum of absolute products behind it.
    fn mismatch(actual: &[f32], exact: &[f64], magnitude: &[f64]) -> Option<String> {
        actual
            .iter()
            .zip(exact.iter().zip(magnitude))
            .enumerate()
            .find_map(|(i, (&a, (&e, &m)))| {
                let ok = (a as f64 - e).abs() <= 1e-5 * m + 1e-6;
                (!ok).then(|| format!("element {i}: {a} vs {e} (magnitude {m})"))
            })
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
            // References in f64 on the same (f32-exact) values; a kernel's f32 sums may then differ by
            // rounding, bounded by a multiple of eps times the sum of absolute products, which the
            // reference computes on absolute values.
            let to32 = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
            let abs = |v: &[f64]| v.iter().map(|v| v.abs()).collect::<Vec<f64>>();
            let (x, w, b, dy) = (values(g.x_len(), 1), values(g.w_len(), 2), values(g.out_channels, 3), values(g.y_len(), 4));
            let (x32, w32, b32, dy32) = (to32(&x), to32(&w), to32(&b), to32(&dy));
            let exact = |f: Reference, p: &[f64], q: &[f64], r: &[f64], len: usize| {
                let (mut value, mut magnitude) = (vec![0.0; len], vec![0.0; len]);
                f(p, q, r, &mut value);
                f(&abs(p), &abs(q), &abs(r), &mut magnitude);
                (value, magnitude)
            };
            let forward = |x: &[f64], w: &[f64], b: &[f64], y: &mut [f64]| conv_forward_reference(&g, x, w, with_bias.then_some(b), y);
            let (y_exact, y_mag) = exact(&forward, &x, &w, &b, g.y_len());
            let data = |dy: &[f64], w: &[f64], _: &[f64], dx: &mut [f64]| conv_backward_data_reference(&g, dy, w, dx);
            let (dx_exact, dx_mag) = exact(&data, &dy, &w, &b, g.x_len());
            let weight = |x: &[f64], dy: &[f64], _: &[f64], dw: &mut [f64]| conv_backward_weight_reference(&g, x, dy, dw);
            let (dw_exact, dw_mag) = exact(&weight, &x, &dy, &b, g.w_len());

            for isa in isas() {
                let mut dw = vec![f32::NAN; g.w_len()];
                conv_backward_weight_direct(isa, &g, &x32, &dy32, &mut dw);
                prop_assert_eq!(mismatch(&dw, &dw_exact, &dw_mag), None, "{:?} dw in {:?}", isa, g);
                if backward_data_supported(&g) {
                    let mut dx = vec![f32::NAN; g.x_len()];
                    conv_backward_data_direct(isa, &g, &dy32, &w32, &mut dx);
                    prop_assert_eq!(mismatch(&dx, &dx_exact, &dx_mag), None, "{:?} dx in {:?}", isa, g);
                }
                let mut y = vec![f32::NAN; g.y_len()];
                conv_forward_direct(isa, &g, &x32, &w32, with_bias.then_some(&b32[..]), &mut y);
                prop_assert_eq!(mismatch(&y, &y_exact, &y_mag), None, "{:?} y in {:?}", isa, g);
            }
        }
    }
}
