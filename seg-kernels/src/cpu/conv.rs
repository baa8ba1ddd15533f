//! Convolution over 1, 2 or 3 spatial axes (lower ranks are 3-D with size-1 axes), NCDHW layout.
//!
//! Forward, with `G` groups of `Cg = Cin / G` input and `Og = Cout / G` output channels:
//!
//! `y[n, o, z] = b[o] + sum_{c < Cg, k} w[o, c, k] * x[n, g(o) Cg + c, z * stride - padding + k * dilation]`
//!
//! over kernel offsets `k` (per axis), reading zero outside the input. Backward:
//! `dx[n, g Cg + c, i] = sum_{o in g, k : i = z stride - padding + k dilation} w[o, c, k] dy[n, o, z]` and
//! `dw[o, c, k] = sum_{n, z} dy[n, o, z] x[n, g(o) Cg + c, z stride - padding + k dilation]`.
//!
//! The fast path lowers each (sample, group) to matrix products over tiles of output positions:
//! `im2col` gathers the `(Cg * K) x tile` patch matrix `X_col`, then `Y = W X_col` (forward),
//! `dX_col = W^T dY` followed by the scatter-add `col2im` (backward data) and `dW += dY X_col^T`
//! (backward weight), all products by the GEMM of [`super::gemm`]. Tiling bounds the patch matrix to a
//! few MiB whatever the volume. The `*_reference` functions are the direct loops it is tested against.

use std::any::TypeId;
use std::ops::Range;

use rayon::prelude::*;

use super::conv_direct::{
    backward_data_supported, conv_backward_data_direct, conv_backward_weight_direct, conv_forward_direct,
    direct_supported,
};
use super::gemm::{gemm, GemmElement, MatLayout, MatMut, MatRef};
use super::simd::Isa;

/// Shape and hyper-parameters of a convolution. Spatial arrays are `(depth, height, width)`;
/// a 2-D convolution has depth 1 (kernel 1, stride 1, padding 0, dilation 1), a 1-D one also height 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub input: [usize; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub padding: [usize; 3],
    pub dilation: [usize; 3],
}

impl ConvGeometry {
    /// Output spatial size per axis: `(input + 2 padding - dilation (kernel - 1) - 1) / stride + 1`.
    pub fn output(&self) -> [usize; 3] {
        std::array::from_fn(|a| {
            let span = self.dilation[a] * (self.kernel[a] - 1) + 1;
            (self.input[a] + 2 * self.padding[a] - span) / self.stride[a] + 1
        })
    }

    /// Checks the geometry; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.groups == 0
            || !self.in_channels.is_multiple_of(self.groups)
            || !self.out_channels.is_multiple_of(self.groups)
        {
            return Err(format!(
                "{} input and {} output channels cannot be split into {} groups",
                self.in_channels, self.out_channels, self.groups
            ));
        }
        for a in 0..3 {
            if self.kernel[a] == 0 || self.stride[a] == 0 || self.dilation[a] == 0 {
                return Err("kernel size, stride and dilation must be positive".into());
            }
            let span = self.dilation[a] * (self.kernel[a] - 1) + 1;
            if self.input[a] + 2 * self.padding[a] < span {
                return Err(format!(
                    "the kernel spans {span} positions on an axis of {} (padded {})",
                    self.input[a],
                    self.input[a] + 2 * self.padding[a]
                ));
            }
        }
        Ok(())
    }

    fn input_len(&self) -> usize {
        self.input.iter().product()
    }
    fn output_len(&self) -> usize {
        self.output().iter().product()
    }
    fn kernel_len(&self) -> usize {
        self.kernel.iter().product()
    }
    fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }
    fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }
    /// Rows of the patch matrix: `Cg * K`.
    fn patch_rows(&self) -> usize {
        self.in_per_group() * self.kernel_len()
    }
    pub fn x_len(&self) -> usize {
        self.batch * self.in_channels * self.input_len()
    }
    pub fn w_len(&self) -> usize {
        self.out_channels * self.patch_rows()
    }
    pub fn y_len(&self) -> usize {
        self.batch * self.out_channels * self.output_len()
    }

    /// Input coordinates read by output position `p` through kernel offset `k` (flat indices), or
    /// `None` in the padding.
    fn source(&self, p: usize, k: usize) -> Option<usize> {
        let out = self.output();
        let pz = [p / (out[1] * out[2]), p / out[2] % out[1], p % out[2]];
        let kz = [
            k / (self.kernel[1] * self.kernel[2]),
            k / self.kernel[2] % self.kernel[1],
            k % self.kernel[2],
        ];
        let mut flat = 0;
        for a in 0..3 {
            let i = (pz[a] * self.stride[a] + kz[a] * self.dilation[a]) as isize - self.padding[a] as isize;
            if i < 0 || i >= self.input[a] as isize {
                return None;
            }
            flat = flat * self.input[a] + i as usize;
        }
        Some(flat)
    }
}

/// Output positions per tile: the patch matrix stays under about 2^20 elements.
fn tile_len(g: &ConvGeometry) -> usize {
    ((1usize << 20) / g.patch_rows().max(1))
        .max(64)
        .min(g.output_len().max(1))
}

/// Splits the columns `0..cols` of a patch-matrix row with kernel offset `k` (output positions
/// `p0..p0 + cols`) into runs, and calls `f(columns, source)` for each: `source` is
/// `Some((first, step))` when the run reads input positions `first, first + step, ...` (flat in the
/// input plane), `None` when it reads padding. Runs follow the output's last axis, so the bounds are
/// checked once per run instead of once per element.
fn for_each_run(
    g: &ConvGeometry,
    k: usize,
    p0: usize,
    cols: usize,
    mut f: impl FnMut(Range<usize>, Option<(usize, usize)>),
) {
    let out = g.output();
    let [d, h, w] = g.input.map(|v| v as isize);
    let kz = [
        k / (g.kernel[1] * g.kernel[2]),
        k / g.kernel[2] % g.kernel[1],
        k % g.kernel[2],
    ];
    let shift: [isize; 3] = std::array::from_fn(|a| (kz[a] * g.dilation[a]) as isize - g.padding[a] as isize);
    let (mut od, mut oh, mut ow) = (p0 / (out[1] * out[2]), p0 / out[2] % out[1], p0 % out[2]);
    let mut j = 0;
    while j < cols {
        let run = (cols - j).min(out[2] - ow);
        let id = (od * g.stride[0]) as isize + shift[0];
        let ih = (oh * g.stride[1]) as isize + shift[1];
        if (0..d).contains(&id) && (0..h).contains(&ih) {
            // Input column of run element t: base + t * step, inside the row for lo <= t < hi.
            let (base, step) = ((ow * g.stride[2]) as isize + shift[2], g.stride[2] as isize);
            let lo = if base >= 0 { 0 } else { (-base + step - 1) / step }.min(run as isize) as usize;
            let hi = if base >= w { 0 } else { (w - base + step - 1) / step }.clamp(lo as isize, run as isize) as usize;
            if lo > 0 {
                f(j..j + lo, None);
            }
            if hi > lo {
                let first = (id * h + ih) * w + base + lo as isize * step;
                f(j + lo..j + hi, Some((first as usize, step as usize)));
            }
            if run > hi {
                f(j + hi..j + run, None);
            }
        } else {
            f(j..j + run, None);
        }
        j += run;
        ow = 0;
        oh += 1;
        if oh == out[1] {
            oh = 0;
            od += 1;
        }
    }
}

/// Gathers the patch matrix of sample `n`, group `gi`, positions `p0..p0 + cols` into `col`
/// (`patch_rows x cols`, row-major).
fn im2col<T: GemmElement>(g: &ConvGeometry, x: &[T], n: usize, gi: usize, p0: usize, cols: usize, col: &mut [T]) {
    let k_len = g.kernel_len();
    col.par_chunks_mut(cols).enumerate().for_each(|(row, dst)| {
        let (c, k) = (row / k_len, row % k_len);
        let plane = &x[(n * g.in_channels + gi * g.in_per_group() + c) * g.input_len()..][..g.input_len()];
        for_each_run(g, k, p0, cols, |range, source| match source {
            None => dst[range].fill(T::ZERO),
            Some((first, 1)) => dst[range.clone()].copy_from_slice(&plane[first..first + range.len()]),
            Some((first, step)) => {
                dst[range]
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, d)| *d = plane[first + i * step]);
            }
        });
    });
}

/// Adds the patch-matrix gradient `col` back into `dx` (the adjoint of [`im2col`]).
fn col2im<T: GemmElement>(g: &ConvGeometry, col: &[T], n: usize, gi: usize, p0: usize, cols: usize, dx: &mut [T]) {
    let (k_len, plane_len) = (g.kernel_len(), g.input_len());
    let start = (n * g.in_channels + gi * g.in_per_group()) * plane_len;
    let planes = &mut dx[start..start + g.in_per_group() * plane_len];
    planes.par_chunks_mut(plane_len).enumerate().for_each(|(c, plane)| {
        for k in 0..k_len {
            let src = &col[(c * k_len + k) * cols..][..cols];
            for_each_run(g, k, p0, cols, |range, source| {
                if let Some((first, step)) = source {
                    for (i, &v) in src[range].iter().enumerate() {
                        plane[first + i * step] = plane[first + i * step] + v;
                    }
                }
            });
        }
    });
}

/// The tiles `(sample, group, first position, positions)` of the lowering.
fn tiles(g: &ConvGeometry) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
    let (p_len, t) = (g.output_len(), tile_len(g));
    (0..g.batch).flat_map(move |n| {
        (0..g.groups).flat_map(move |gi| (0..p_len).step_by(t).map(move |p0| (n, gi, p0, t.min(p_len - p0))))
    })
}

/// Layout of the `Og x cols` block of `y` (or `dy`) for sample `n`, group `gi`, positions from `p0`.
fn out_block(g: &ConvGeometry, n: usize, gi: usize, p0: usize, cols: usize) -> MatLayout {
    let p_len = g.output_len();
    MatLayout {
        rows: g.out_per_group(),
        cols,
        offset: (n * g.out_channels + gi * g.out_per_group()) * p_len + p0,
        row_stride: p_len,
        col_stride: 1,
    }
}

/// Layout of group `gi`'s `Og x (Cg K)` weight matrix.
fn weight_block(g: &ConvGeometry, gi: usize) -> MatLayout {
    MatLayout::row_major(
        g.out_per_group(),
        g.patch_rows(),
        gi * g.out_per_group() * g.patch_rows(),
    )
}

fn threads() -> usize {
    rayon::current_num_threads()
}

/// `y[n, c, p] += bias[c]` for a buffer of `(N, C, plane_len)` values, `C = bias.len()`.
pub fn add_channel_bias<T: GemmElement>(y: &mut [T], bias: &[T], plane_len: usize) {
    if plane_len == 0 {
        return;
    }
    y.par_chunks_mut(plane_len).enumerate().for_each(|(i, plane)| {
        let b = bias[i % bias.len()];
        plane.iter_mut().for_each(|v| *v = *v + b);
    });
}

/// `slice` as `&[f32]` when `T` is `f32`.
fn as_f32<T: 'static>(slice: &[T]) -> Option<&[f32]> {
    // SAFETY: T is f32, so the memory is a valid [f32] of the same length.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(slice.as_ptr().cast::<f32>(), slice.len()) })
}

/// `slice` as `&mut [f32]` when `T` is `f32`.
fn as_f32_mut<T: 'static>(slice: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: T is f32, so the memory is a valid [f32] of the same length, borrowed uniquely.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts_mut(slice.as_mut_ptr().cast::<f32>(), slice.len()) })
}

/// `y = conv(x, w) + b` (see the module doc): for f32 with stride 1 on a SIMD CPU by the direct
/// kernel of [`super::conv_direct`], otherwise by im2col and GEMM.
pub fn conv_forward<T: GemmElement>(g: &ConvGeometry, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    if let (true, Some(isa)) = (direct_supported(g), Isa::detect()) {
        if let (Some(x), Some(w), Some(y)) = (as_f32(x), as_f32(w), as_f32_mut(y)) {
            return conv_forward_direct(isa, g, x, w, bias.and_then(as_f32), y);
        }
    }
    conv_forward_im2col(g, x, w, bias, y);
}

/// `y = conv(x, w) + b` by im2col and GEMM, for any geometry and element type.
pub fn conv_forward_im2col<T: GemmElement>(g: &ConvGeometry, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    assert!(
        x.len() == g.x_len() && w.len() == g.w_len() && y.len() == g.y_len(),
        "conv_forward: buffer sizes"
    );
    let mut col = vec![T::ZERO; g.patch_rows() * tile_len(g)];
    for (n, gi, p0, cols) in tiles(g) {
        let col = &mut col[..g.patch_rows() * cols];
        im2col(g, x, n, gi, p0, cols, col);
        let a = MatRef {
            data: w,
            layout: weight_block(g, gi),
        };
        let b = MatRef {
            data: &*col,
            layout: MatLayout::row_major(g.patch_rows(), cols, 0),
        };
        gemm(
            a,
            b,
            MatMut {
                data: &mut *y,
                layout: out_block(g, n, gi, p0, cols),
            },
            T::ZERO,
            threads(),
        );
    }
    if let Some(bias) = bias {
        add_channel_bias(y, bias, g.output_len());
    }
}

/// `dx` (overwritten) from `dy` and `w`: the adjoint of the forward in `x`. For f32 with stride 1
/// on a SIMD CPU, the direct kernel on the flipped kernel; otherwise GEMM and col2im.
pub fn conv_backward_data<T: GemmElement>(g: &ConvGeometry, dy: &[T], w: &[T], dx: &mut [T]) {
    if let (true, Some(isa)) = (backward_data_supported(g), Isa::detect()) {
        if let (Some(dy), Some(w), Some(dx)) = (as_f32(dy), as_f32(w), as_f32_mut(dx)) {
            return conv_backward_data_direct(isa, g, dy, w, dx);
        }
    }
    conv_backward_data_im2col(g, dy, w, dx);
}

/// `dx` (overwritten) by GEMM and col2im, for any geometry and element type.
pub fn conv_backward_data_im2col<T: GemmElement>(g: &ConvGeometry, dy: &[T], w: &[T], dx: &mut [T]) {
    assert!(
        dy.len() == g.y_len() && w.len() == g.w_len() && dx.len() == g.x_len(),
        "conv_backward_data: buffer sizes"
    );
    dx.iter_mut().for_each(|v| *v = T::ZERO);
    let mut col = vec![T::ZERO; g.patch_rows() * tile_len(g)];
    for (n, gi, p0, cols) in tiles(g) {
        let col = &mut col[..g.patch_rows() * cols];
        let a = MatRef {
            data: w,
            layout: weight_block(g, gi).t(),
        };
        let b = MatRef {
            data: dy,
            layout: out_block(g, n, gi, p0, cols),
        };
        gemm(
            a,
            b,
            MatMut {
                data: &mut *col,
                layout: MatLayout::row_major(g.patch_rows(), cols, 0),
            },
            T::ZERO,
            threads(),
        );
        col2im(g, col, n, gi, p0, cols, dx);
    }
}

/// `dw` (overwritten) from `x` and `dy`: the adjoint of the forward in `w`. For f32 with stride 1,
/// the SIMD kernel on the padded input; otherwise im2col and GEMM.
pub fn conv_backward_weight<T: GemmElement>(g: &ConvGeometry, x: &[T], dy: &[T], dw: &mut [T]) {
    if let (true, Some(isa)) = (direct_supported(g), Isa::detect()) {
        if let (Some(x), Some(dy), Some(dw)) = (as_f32(x), as_f32(dy), as_f32_mut(dw)) {
            return conv_backward_weight_direct(isa, g, x, dy, dw);
        }
    }
    conv_backward_weight_im2col(g, x, dy, dw);
}

/// `dw` (overwritten) by im2col and GEMM, for any geometry and element type.
pub fn conv_backward_weight_im2col<T: GemmElement>(g: &ConvGeometry, x: &[T], dy: &[T], dw: &mut [T]) {
    assert!(
        x.len() == g.x_len() && dy.len() == g.y_len() && dw.len() == g.w_len(),
        "conv_backward_weight: buffer sizes"
    );
    dw.iter_mut().for_each(|v| *v = T::ZERO);
    let mut col = vec![T::ZERO; g.patch_rows() * tile_len(g)];
    for (n, gi, p0, cols) in tiles(g) {
        let col = &mut col[..g.patch_rows() * cols];
        im2col(g, x, n, gi, p0, cols, col);
        let a = MatRef {
            data: dy,
            layout: out_block(g, n, gi, p0, cols),
        };
        let b = MatRef {
            data: &*col,
            layout: MatLayout::row_major(g.patch_rows(), cols, 0).t(),
        };
        gemm(
            a,
            b,
            MatMut {
                data: &mut *dw,
                layout: weight_block(g, gi),
            },
            T::ONE,
            threads(),
        );
    }
}

/// Visits every `(x index, w index, y index)` triple the convolution multiplies: the direct loops.
fn for_each_tap(g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize)) {
    let (p_len, k_len, i_len) = (g.output_len(), g.kernel_len(), g.input_len());
    for n in 0..g.batch {
        for o in 0..g.out_channels {
            let gi = o / g.out_per_group();
            for c in 0..g.in_per_group() {
                for k in 0..k_len {
                    for p in 0..p_len {
                        if let Some(i) = g.source(p, k) {
                            let xi = (n * g.in_channels + gi * g.in_per_group() + c) * i_len + i;
                            let wi = (o * g.in_per_group() + c) * k_len + k;
                            f(xi, wi, (n * g.out_channels + o) * p_len + p);
                        }
                    }
                }
            }
        }
    }
}

/// The forward by direct loops.
pub fn conv_forward_reference<T: GemmElement>(g: &ConvGeometry, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    let p_len = g.output_len();
    for (i, v) in y.iter_mut().enumerate() {
        *v = bias.map_or(T::ZERO, |b| b[i / p_len % g.out_channels]);
    }
    for_each_tap(g, |xi, wi, yi| y[yi] = y[yi] + w[wi] * x[xi]);
}

/// The backward data by direct loops.
pub fn conv_backward_data_reference<T: GemmElement>(g: &ConvGeometry, dy: &[T], w: &[T], dx: &mut [T]) {
    dx.iter_mut().for_each(|v| *v = T::ZERO);
    for_each_tap(g, |xi, wi, yi| dx[xi] = dx[xi] + w[wi] * dy[yi]);
}

/// The backward weight by direct loops.
pub fn conv_backward_weight_reference<T: GemmElement>(g: &ConvGeometry, x: &[T], dy: &[T], dw: &mut [T]) {
    dw.iter_mut().for_each(|v| *v = T::ZERO);
    for_each_tap(g, |xi, wi, yi| dw[wi] = dw[wi] + x[xi] * dy[yi]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_values::values;
    use proptest::prelude::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-10 * (1.0 + y.abs()))
    }

    fn geometry() -> impl Strategy<Value = ConvGeometry> {
        (
            1usize..3,
            1usize..4,
            1usize..4,
            1usize..3,
            proptest::array::uniform3(1usize..4),
            proptest::array::uniform3(1usize..3),
            proptest::array::uniform3(0usize..2),
            proptest::array::uniform3(1usize..3),
            proptest::array::uniform3(0usize..6),
            any::<bool>(),
        )
            .prop_map(
                |(batch, cg, og, groups, kernel, stride, padding, dilation, extra, flat)| {
                    let mut g = ConvGeometry {
                        batch,
                        in_channels: cg * groups,
                        out_channels: og * groups,
                        groups,
                        input: [0; 3],
                        kernel,
                        stride,
                        padding,
                        dilation,
                    };
                    g.input = std::array::from_fn(|a| g.dilation[a] * (g.kernel[a] - 1) + 1 + extra[a]);
                    if flat {
                        // a 2-D convolution: depth 1
                        (g.input[0], g.kernel[0], g.stride[0], g.padding[0], g.dilation[0]) = (1, 1, 1, 0, 1);
                    }
                    g
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn lowering_matches_direct_loops(g in geometry(), with_bias in any::<bool>()) {
            prop_assert!(g.validate().is_ok());
            let (x, w, dy) = (values(g.x_len(), 1), values(g.w_len(), 2), values(g.y_len(), 3));
            let b = values(g.out_channels, 4);
            let bias = with_bias.then_some(&b[..]);
            let (mut fast, mut slow) = (vec![0.0; g.y_len()], vec![0.0; g.y_len()]);
            conv_forward(&g, &x, &w, bias, &mut fast);
            conv_forward_reference(&g, &x, &w, bias, &mut slow);
            prop_assert!(close(&fast, &slow));
            let (mut fast, mut slow) = (vec![7.0; g.x_len()], vec![0.0; g.x_len()]);
            conv_backward_data(&g, &dy, &w, &mut fast);
            conv_backward_data_reference(&g, &dy, &w, &mut slow);
            prop_assert!(close(&fast, &slow));
            let (mut fast, mut slow) = (vec![7.0; g.w_len()], vec![0.0; g.w_len()]);
            conv_backward_weight(&g, &x, &dy, &mut fast);
            conv_backward_weight_reference(&g, &x, &dy, &mut slow);
            prop_assert!(close(&fast, &slow));
        }
    }

    #[test]
    fn tiles_cover_large_outputs() {
        // More output positions than one tile holds: the tiling must stitch them back together.
        let g = ConvGeometry {
            batch: 2,
            in_channels: 64,
            out_channels: 2,
            groups: 1,
            input: [8, 10, 10],
            kernel: [3; 3],
            stride: [1; 3],
            padding: [1; 3],
            dilation: [1; 3],
        };
        assert!(tile_len(&g) < g.output_len(), "the case must need several tiles");
        let (x, w) = (values(g.x_len(), 5), values(g.w_len(), 6));
        let (mut fast, mut slow) = (vec![0.0; g.y_len()], vec![0.0; g.y_len()]);
        conv_forward(&g, &x, &w, None, &mut fast);
        conv_forward_reference(&g, &x, &w, None, &mut slow);
        assert!(close(&fast, &slow));
    }

    #[test]
    fn invalid_geometries_are_reported() {
        let g = ConvGeometry {
            batch: 1,
            in_channels: 3,
            out_channels: 4,
            groups: 2,
            input: [1, 5, 5],
            kernel: [1, 3, 3],
            stride: [1; 3],
            padding: [0; 3],
            dilation: [1; 3],
        };
        assert!(g.validate().unwrap_err().contains("groups"));
        let g = ConvGeometry {
            groups: 1,
            input: [1, 2, 2],
            ..g
        };
        assert!(g.validate().unwrap_err().contains("spans"));
    }
}
