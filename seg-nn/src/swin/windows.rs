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

/// The inverse of [`window_partition`]: windows `(B nW, *window, C)` back to `(B, *dims, C)`.
pub fn window_reverse(windows: &Tensor, window: &[usize], batch: usize, dims: &[usize]) -> Result<Tensor> {
    let r = window.len();
    let c = windows.shape()[r + 1];
    let mut split = vec![batch];
    split.extend(dims.iter().zip(window).map(|(d, w)| d / w));
    split.extend(window);
    split.push(c);
    // (B, n_1, ..., n_r, w_1, ..., w_r, C) -> (B, n_1, w_1, ..., n_r, w_r, C)
    let order: Vec<isize> = std::iter::once(0)
        .chain((0..r).flat_map(|i| [i as isize + 1, (r + i) as isize + 1]))
        .chain(std::iter::once(2 * r as isize + 1))
        .collect();
    let mut full = vec![batch];
    full.extend(dims);
    full.push(c);
    windows.reshape(&split)?.permute(&order)?.reshape(&full)
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
    fn partition_and_reverse_are_inverse() {
        let x = Tensor::arange(0.0, 144.0, 1.0, DType::F32)
            .unwrap()
            .reshape(&[2, 4, 6, 3])
            .unwrap();
        let w = window_partition(&x, &[2, 3]).unwrap();
        assert_eq!(w.shape(), &[8, 6, 3]);
        // Window 1 of image 0 starts at (0, 3): element (0, 3, 0).
        assert_eq!(w.narrow(0, 1, 1).unwrap().to_vec::<f32>().unwrap()[0], 9.0);
        let back = window_reverse(&w.reshape(&[8, 2, 3, 3]).unwrap(), &[2, 3], 2, &[4, 6]).unwrap();
        assert_eq!(back.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
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
