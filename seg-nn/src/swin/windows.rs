//! Window geometry of MONAI's Swin (`monai/networks/nets/swin_unetr.py`): window sizes clipped to
//! the feature map, window partition and its inverse, the shifted-window attention mask and the
//! relative-position index. Feature maps are channels-last, `(B, *spatial, C)`, 2D or 3D.

use std::ops::Range;

use seg_tensor::{Error, Result, Tensor};

/// MONAI's `get_window_size`: on every axis no larger than the window, the window shrinks to the
/// axis and the shift becomes 0.
pub fn get_window_size(size: &[usize], window: &[usize], shift: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let (mut w, mut s) = (window.to_vec(), shift.to_vec());
    for i in 0..size.len() {
        if size[i] <= window[i] {
            w[i] = size[i];
            s[i] = 0;
        }
    }
    (w, s)
}

/// The windows of `x` `(B, *S, C)` (every `S_i` a multiple of `window_i`): `(B nW, prod(window),
/// C)`, windows in row-major order of their position, tokens row-major inside each.
pub fn window_partition(x: &Tensor, window: &[usize]) -> Result<Tensor> {
    let r = window.len();
    let (b, c) = (x.shape()[0], x.shape()[r + 1]);
    let mut split = vec![b];
    for (i, &w) in window.iter().enumerate() {
        split.extend([x.shape()[i + 1] / w, w]);
    }
    split.push(c);
    // (B, n_1, w_1, ..., n_r, w_r, C) -> (B, n_1, ..., n_r, w_1, ..., w_r, C)
    let order: Vec<isize> = std::iter::once(0)
        .chain((0..r).map(|i| 2 * i as isize + 1))
        .chain((0..r).map(|i| 2 * i as isize + 2))
        .chain(std::iter::once(2 * r as isize + 1))
        .collect();
    let n: usize = window.iter().product();
    x.reshape(&split)?
        .permute(&order)?
        .reshape(&[x.numel() / (n * c), n, c])
}

/// Where the tokens of a shifted-window pass come from and go back to, for a map `(batch, *size)`
/// padded at the end of each axis to whole windows and rolled by `-shift` (MONAI's
/// `SwinTransformerBlock`): `gather[k]` is the token (row of the map's `(batch prod(size), C)`
/// rows) at row `k` of the windows `(batch nW N)` in [`window_partition`] order, or `batch
/// prod(size)` (one row past the map: a zero row) for padding; `scatter[t]` is the window row
/// that token `t` comes back from after rolling by `+shift` and cropping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowTokens {
    pub gather: Vec<i64>,
    pub scatter: Vec<i64>,
    /// Whether some window row is padding.
    pub padded: bool,
}

impl WindowTokens {
    pub fn new(batch: usize, size: &[usize], window: &[usize], shift: &[usize]) -> Self {
        let r = size.len();
        let padded: Vec<usize> = size.iter().zip(window).map(|(s, w)| s.div_ceil(*w) * w).collect();
        let counts: Vec<usize> = padded.iter().zip(window).map(|(p, w)| p / w).collect();
        let (per_image, n) = (size.iter().product::<usize>(), window.iter().product::<usize>());
        let windows: usize = counts.iter().product();
        let mut gather = Vec::with_capacity(batch * windows * n);
        let mut scatter = vec![0i64; batch * per_image];
        let mut any_pad = false;
        let unflatten = |mut k: usize, dims: &[usize]| {
            let mut c = vec![0usize; r];
            for a in (0..r).rev() {
                c[a] = k % dims[a];
                k /= dims[a];
            }
            c
        };
        for b in 0..batch {
            for wi in 0..windows {
                let wc = unflatten(wi, &counts);
                for t in 0..n {
                    let tc = unflatten(t, window);
                    // Position in the shifted padded map, and where it was before the roll.
                    let src: Vec<usize> = (0..r)
                        .map(|a| (wc[a] * window[a] + tc[a] + shift[a]) % padded[a])
                        .collect();
                    if (0..r).any(|a| src[a] >= size[a]) {
                        any_pad = true;
                        gather.push((batch * per_image) as i64);
                    } else {
                        let flat = src.iter().zip(size).fold(0, |acc, (c, s)| acc * s + c);
                        let token = b * per_image + flat;
                        scatter[token] = gather.len() as i64;
                        gather.push(token as i64);
                    }
                }
            }
        }
        Self {
            gather,
            scatter,
            padded: any_pad,
        }
    }
}

/// The indices Python's `slice(start, stop)` selects from `len` items.
fn py_slice(start: Option<isize>, stop: Option<isize>, len: usize) -> Range<usize> {
    let at = |i: isize| {
        if i < 0 {
            (i + len as isize).max(0) as usize
        } else {
            (i as usize).min(len)
        }
    };
    let (a, b) = (start.map_or(0, at), stop.map_or(len, at));
    a..b.max(a)
}

/// MONAI's `compute_mask` for the padded feature map `dims`: `(nW, N, N)` f32, `-100` where two
/// tokens of a window come from different regions of the shifted map, `0` where from the same.
/// Regions per axis are Python's `slice(-w)`, `slice(-w, -s)`, `slice(-s, None)` (so an axis with
/// shift 0 is one region), numbered in row-major order.
pub fn compute_mask(dims: &[usize], window: &[usize], shift: &[usize]) -> Result<Tensor> {
    let r = dims.len();
    if window.len() != r || shift.len() != r || !(2..=3).contains(&r) {
        return Err(Error::invalid(
            "compute_mask",
            format!("expected 2 or 3 spatial dims with one window and shift size each, found dims {dims:?}, window {window:?}, shift {shift:?}"),
        ));
    }
    let axis_regions: Vec<Vec<usize>> = (0..r)
        .map(|a| {
            let (w, s, len) = (window[a] as isize, shift[a] as isize, dims[a]);
            let mut region = vec![0usize; len];
            let slices = [(None, Some(-w)), (Some(-w), Some(-s)), (Some(-s), None)];
            for (k, (start, stop)) in slices.into_iter().enumerate() {
                region[py_slice(start, stop, len)].fill(k);
            }
            region
        })
        .collect();
    // Region number of every position: later slices overwrite earlier ones, per axis, as MONAI's loop does.
    let total: usize = dims.iter().product();
    let mut img = vec![0.0f32; total];
    for (flat, v) in img.iter_mut().enumerate() {
        let (mut rest, mut id) = (flat, 0usize);
        let mut coords = vec![0usize; r];
        for a in (0..r).rev() {
            coords[a] = rest % dims[a];
            rest /= dims[a];
        }
        for a in 0..r {
            id = id * 3 + axis_regions[a][coords[a]];
        }
        *v = id as f32;
    }
    let mut shape = vec![1];
    shape.extend(dims);
    shape.push(1);
    let windows = window_partition(&Tensor::from_vec(img, &shape)?, window)?;
    let (nw, n) = (windows.shape()[0], windows.shape()[1]);
    let ids = windows.to_vec::<f32>()?;
    let mut mask = vec![0.0f32; nw * n * n];
    for w in 0..nw {
        for i in 0..n {
            for j in 0..n {
                if ids[w * n + i] != ids[w * n + j] {
                    mask[(w * n + i) * n + j] = -100.0;
                }
            }
        }
    }
    Tensor::from_vec(mask, &[nw, n, n])
}

/// MONAI's `relative_position_index` of a window (2D or 3D): `(N, N)` row-major, entry `(i, j)`
/// the table row of the offset between tokens `i` and `j`, `sum_a (c_a(i) - c_a(j) + w_a - 1)
/// prod_{b > a} (2 w_b - 1)`.
pub fn relative_position_index(window: &[usize]) -> Vec<usize> {
    let n: usize = window.iter().product();
    let coords = |mut t: usize| {
        let mut c = vec![0usize; window.len()];
        for a in (0..window.len()).rev() {
            c[a] = t % window[a];
            t /= window[a];
        }
        c
    };
    let mut index = Vec::with_capacity(n * n);
    for i in 0..n {
        let ci = coords(i);
        for j in 0..n {
            let cj = coords(j);
            let mut at = 0;
            for a in 0..window.len() {
                at = at * (2 * window[a] - 1) + (ci[a] + window[a] - 1 - cj[a]);
            }
            index.push(at);
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;
    use seg_tensor::DType;

    #[test]
    fn window_size_clips_and_zeroes_the_shift() {
        assert_eq!(
            get_window_size(&[5, 9, 7], &[7, 7, 7], &[3, 3, 3]),
            (vec![5, 7, 7], vec![0, 3, 0])
        );
    }

    #[test]
    fn token_maps_match_pad_roll_and_partition() {
        // Map (2, 3, 5) with window (2, 2) and shift (1, 1): padded to (4, 6), rolled by -1.
        let (size, window, shift) = ([3usize, 5], [2usize, 2], [1usize, 1]);
        let x = Tensor::arange(1.0, 31.0, 1.0, DType::F32)
            .unwrap()
            .reshape(&[2, 3, 5, 1])
            .unwrap();
        let expected = window_partition(
            &x.pad(&[0, 0, 0, 1, 0, 1], seg_tensor::PadMode::Constant, 0.0)
                .unwrap()
                .roll(&[-1, -1], &[1, 2])
                .unwrap(),
            &window,
        )
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
        let maps = WindowTokens::new(2, &size, &window, &shift);
        assert!(maps.padded);
        // Token t holds value t + 1; padding rows (index 30) hold 0.
        let got: Vec<f32> = maps
            .gather
            .iter()
            .map(|&t| if t == 30 { 0.0 } else { t as f32 + 1.0 })
            .collect();
        assert_eq!(got, expected);
        assert!(maps
            .scatter
            .iter()
            .enumerate()
            .all(|(t, &k)| maps.gather[k as usize] == t as i64));
    }

    #[test]
    fn index_matches_monai_for_a_2x3_window() {
        let index = relative_position_index(&[2, 3]);
        assert_eq!(index.len(), 36);
        // Token 0 = (0, 0) against token 5 = (1, 2): offset (-1, -2) -> (0 * 5 + 0).
        assert_eq!(index[5], 0);
        // Diagonal: offset (0, 0) -> (1 * 5 + 2).
        assert!((0..6).all(|i| index[i * 6 + i] == 7));
    }

    #[test]
    fn mask_separates_shifted_regions_only() {
        let mask = compute_mask(&[4, 4], &[2, 2], &[1, 1]).unwrap();
        assert_eq!(mask.shape(), &[4, 4, 4]);
        let m = mask.to_vec::<f32>().unwrap();
        // The first window lies in one region; the last holds four.
        assert!(m[..16].iter().all(|&v| v == 0.0));
        assert_eq!(m[48..].iter().filter(|&&v| v == -100.0).count(), 12);
    }
}
