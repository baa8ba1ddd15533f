//! Property tests: ops on random shapes (and random views) against naive references written with
//! explicit index arithmetic over plain vectors.

use proptest::prelude::*;
use seg_tensor::{DType, Tensor};

// ----- naive index arithmetic -----

fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(strides_of(shape)).map(|(i, s)| i * s).sum()
}

/// Row-major position in a tensor of `in_shape` of the element that broadcasting maps to output
/// position `out_idx` (leading output axes dropped, size-1 input axes pinned to 0).
fn broadcast_source(out_idx: &[usize], in_shape: &[usize]) -> usize {
    let lead = out_idx.len() - in_shape.len();
    let idx: Vec<usize> = in_shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if n == 1 { 0 } else { out_idx[lead + d] })
        .collect();
    ravel(&idx, in_shape)
}

fn broadcast_naive(a: &[usize], b: &[usize]) -> Vec<usize> {
    let r = a.len().max(b.len());
    let get = |s: &[usize], i: usize| if i < r - s.len() { 1 } else { s[i - (r - s.len())] };
    (0..r).map(|i| get(a, i).max(get(b, i))).collect()
}

fn same(x: f64, y: f64, tol: f64) -> bool {
    (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= tol * (1.0 + y.abs())
}

type TensorOp = fn(&Tensor, &Tensor) -> seg_tensor::Result<Tensor>;
/// An op's name, the op, and its naive scalar version.
type BinaryCase = (&'static str, TensorOp, fn(f64, f64) -> f64);
type CompareCase = (TensorOp, fn(f64, f64) -> bool);

// ----- strategies -----

/// Two shapes that broadcast together: each axis of each side is the output's size or 1, and each
/// side drops a random number of leading axes.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    prop::collection::vec(1usize..=4, 0..=4).prop_flat_map(|out| {
        let r = out.len();
        let side = |out: Vec<usize>| {
            (0..=r, prop::collection::vec(any::<bool>(), r)).prop_map(move |(rank, ones)| {
                (r - rank..r)
                    .map(|i| if ones[i] { 1 } else { out[i] })
                    .collect::<Vec<usize>>()
            })
        };
        (side(out.clone()), side(out))
    })
}

/// A random f64 tensor of `shape`; with `transposed`, a transposed view of a tensor of the shape
/// with its last two axes swapped (non-contiguous), else a contiguous tensor.
fn make(shape: &[usize], seed: u64, transposed: bool) -> Tensor {
    if transposed && shape.len() >= 2 {
        let mut swapped = shape.to_vec();
        let r = shape.len();
        swapped.swap(r - 1, r - 2);
        Tensor::randn(&swapped, seed, DType::F64)
            .unwrap()
            .transpose(-1, -2)
            .unwrap()
    } else {
        Tensor::randn(shape, seed, DType::F64).unwrap()
    }
}

fn shape_strategy(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 1..=max_rank)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn binary_ops_match_naive_broadcasting(
        (sa, sb) in broadcast_pair(),
        seed in any::<u64>(),
        ta in any::<bool>(),
        tb in any::<bool>(),
    ) {
        let a = make(&sa, seed, ta);
        let b = make(&sb, seed ^ 0x5555, tb);
        let (av, bv) = (a.to_vec_f64(), b.to_vec_f64());
        let out_shape = broadcast_naive(&sa, &sb);
        let n: usize = out_shape.iter().product();
        let pairs: Vec<(f64, f64)> = (0..n)
            .map(|flat| {
                let idx = unravel(flat, &out_shape);
                (av[broadcast_source(&idx, &sa)], bv[broadcast_source(&idx, &sb)])
            })
            .collect();
        let ops: [BinaryCase; 7] = [
            ("add", Tensor::add, |x, y| x + y),
            ("sub", Tensor::sub, |x, y| x - y),
            ("mul", Tensor::mul, |x, y| x * y),
            ("div", Tensor::div, |x, y| x / y),
            ("maximum", Tensor::maximum, f64::max),
            ("minimum", Tensor::minimum, f64::min),
            ("pow", Tensor::pow, |x: f64, y| x.abs().powf(y)),
        ];
        for (name, op, naive) in ops {
            let lhs = if name == "pow" { a.abs().unwrap() } else { a.clone() };
            let y = op(&lhs, &b).unwrap();
            prop_assert_eq!(y.shape(), &out_shape[..], "{} shape", name);
            for (i, (got, &(x, z))) in y.to_vec_f64().iter().zip(&pairs).enumerate() {
                let want = naive(x, z);
                prop_assert!(same(*got, want, 1e-15), "{} element {}: {} vs {}", name, i, got, want);
            }
        }
        let cmps: [CompareCase; 3] = [
            (Tensor::lt, |x, y| x < y),
            (Tensor::ge, |x, y| x >= y),
            (Tensor::eq, |x, y| x == y),
        ];
        for (cmp, naive) in cmps {
            let m = cmp(&a, &b).unwrap().to_vec::<u8>().unwrap();
            let want: Vec<u8> = pairs.iter().map(|&(x, y)| u8::from(naive(x, y))).collect();
            prop_assert_eq!(m, want);
        }
        // The gradient of a broadcast add sums over the broadcast axes: each input element gets
        // the number of output positions that read it.
        let (la, lb) = (a.requires_grad(), b.requires_grad());
        let g = la.add(&lb).unwrap().sum_all().unwrap().backward().unwrap();
        let mut count_a = vec![0.0; av.len()];
        let mut count_b = vec![0.0; bv.len()];
        for flat in 0..n {
            let idx = unravel(flat, &out_shape);
            count_a[broadcast_source(&idx, &sa)] += 1.0;
            count_b[broadcast_source(&idx, &sb)] += 1.0;
        }
        prop_assert_eq!(g.get(&la).unwrap().to_vec_f64(), count_a);
        prop_assert_eq!(g.get(&lb).unwrap().to_vec_f64(), count_b);
    }

    #[test]
    fn reductions_match_naive(
        shape in shape_strategy(4),
        mask in prop::collection::vec(any::<bool>(), 4),
        keepdim in any::<bool>(),
        seed in any::<u64>(),
        transposed in any::<bool>(),
    ) {
        let x = make(&shape, seed, transposed);
        let xv = x.to_vec_f64();
        let rank = shape.len();
        let dims: Vec<isize> = (0..rank).filter(|&d| mask[d]).map(|d| d as isize).collect();
        let reduced: Vec<bool> = (0..rank).map(|d| dims.is_empty() || mask[d]).collect();
        let kept_shape: Vec<usize> = (0..rank).filter(|&d| !reduced[d]).map(|d| shape[d]).collect();
        let keep_shape: Vec<usize> = (0..rank).map(|d| if reduced[d] { 1 } else { shape[d] }).collect();
        // Bucket every element by its kept coordinates.
        let mut buckets = vec![Vec::new(); kept_shape.iter().product()];
        for (flat, &v) in xv.iter().enumerate() {
            let idx = unravel(flat, &shape);
            let kept: Vec<usize> = (0..rank).filter(|&d| !reduced[d]).map(|d| idx[d]).collect();
            buckets[ravel(&kept, &kept_shape)].push(v);
        }
        let out_shape = if keepdim { &keep_shape } else { &kept_shape };
        let check = |name: &str, y: Tensor, naive: &dyn Fn(&[f64]) -> f64| -> Result<(), TestCaseError> {
            prop_assert_eq!(y.shape(), &out_shape[..], "{} shape", name);
            for (got, bucket) in y.to_vec_f64().iter().zip(&buckets) {
                let want = naive(bucket);
                prop_assert!(same(*got, want, 1e-12), "{} over {:?}: {} vs {}", name, dims, got, want);
            }
            Ok(())
        };
        let sum = |b: &[f64]| b.iter().sum::<f64>();
        let mean = |b: &[f64]| sum(b) / b.len() as f64;
        check("sum", x.sum(&dims, keepdim).unwrap(), &sum)?;
        check("mean", x.mean(&dims, keepdim).unwrap(), &mean)?;
        for correction in [0usize, 1] {
            let var = |b: &[f64]| {
                let m = mean(b);
                b.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (b.len() as f64 - correction as f64)
            };
            check("var", x.var(&dims, correction, keepdim).unwrap(), &var)?;
        }
        let lse = |b: &[f64]| {
            let m = b.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + b.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
        };
        check("logsumexp", x.logsumexp(&dims, keepdim).unwrap(), &lse)?;
    }

    #[test]
    fn max_min_over_one_dim_match_naive(
        shape in shape_strategy(4),
        dim_pick in 0usize..4,
        keepdim in any::<bool>(),
        seed in any::<u64>(),
        transposed in any::<bool>(),
        quantize in any::<bool>(),
    ) {
        let mut x = make(&shape, seed, transposed);
        if quantize {
            // Few distinct values, so that ties (first index wins) are common.
            let v: Vec<f64> = x.to_vec_f64().iter().map(|v| (v * 1.5).round()).collect();
            x = Tensor::from_vec(v, &shape).unwrap();
        }
        let xv = x.to_vec_f64();
        let d = dim_pick % shape.len();
        let mut out_shape = shape.clone();
        out_shape[d] = 1;
        let n: usize = out_shape.iter().product();
        let mut want_max = Vec::new();
        let mut want_min = Vec::new();
        for flat in 0..n {
            let mut idx = unravel(flat, &out_shape);
            let line: Vec<f64> = (0..shape[d]).map(|k| { idx[d] = k; xv[ravel(&idx, &shape)] }).collect();
            let first = |better: fn(f64, f64) -> bool| {
                let mut best = 0;
                for k in 1..line.len() {
                    if better(line[k], line[best]) {
                        best = k;
                    }
                }
                (line[best], best as i64)
            };
            want_max.push(first(|a, b| a > b));
            want_min.push(first(|a, b| a < b));
        }
        let squeeze = |mut s: Vec<usize>| { if !keepdim { s.remove(d); } s };
        let expected_shape = squeeze(out_shape.clone());
        for (largest, want) in [(true, &want_max), (false, &want_min)] {
            let (v, i) = if largest { x.max_dim(d as isize, keepdim) } else { x.min_dim(d as isize, keepdim) }.unwrap();
            prop_assert_eq!(v.shape(), &expected_shape[..]);
            prop_assert_eq!(i.shape(), &expected_shape[..]);
            let got: Vec<(f64, i64)> = v.to_vec_f64().into_iter().zip(i.to_vec::<i64>().unwrap()).collect();
            prop_assert_eq!(&got, want);
        }
        let am = x.argmax(d as isize, keepdim).unwrap().to_vec::<i64>().unwrap();
        prop_assert_eq!(am, want_max.iter().map(|w| w.1).collect::<Vec<_>>());
    }

    #[test]
    fn permute_then_contiguous_is_a_transposition(
        (shape, perm) in shape_strategy(5).prop_flat_map(|s| {
            let r = s.len();
            (Just(s), Just((0..r).collect::<Vec<usize>>()).prop_shuffle())
        }),
        seed in any::<u64>(),
    ) {
        let x = Tensor::randn(&shape, seed, DType::F64).unwrap();
        let xv = x.to_vec_f64();
        let dims: Vec<isize> = perm.iter().map(|&d| d as isize).collect();
        let p = x.permute(&dims).unwrap();
        let out_shape: Vec<usize> = perm.iter().map(|&d| shape[d]).collect();
        prop_assert_eq!(p.shape(), &out_shape[..]);
        let c = p.contiguous().unwrap();
        prop_assert!(c.is_contiguous());
        let n: usize = shape.iter().product();
        let want: Vec<f64> = (0..n)
            .map(|flat| {
                let out_idx = unravel(flat, &out_shape);
                let mut in_idx = vec![0; shape.len()];
                for (i, &d) in perm.iter().enumerate() {
                    in_idx[d] = out_idx[i];
                }
                xv[ravel(&in_idx, &shape)]
            })
            .collect();
        prop_assert_eq!(c.to_vec_f64(), want.clone());
        // Reshape of the view, and the inverse permutation, agree too.
        prop_assert_eq!(p.reshape(&[n]).unwrap().to_vec_f64(), want);
        let mut inverse = vec![0isize; perm.len()];
        for (i, &d) in perm.iter().enumerate() {
            inverse[d] = i as isize;
        }
        prop_assert_eq!(c.permute(&inverse).unwrap().contiguous().unwrap().to_vec_f64(), xv);
    }

    #[test]
    fn matmul_matches_triple_loop(
        (batch_a, batch_b) in broadcast_pair().prop_filter("at most 2 batch axes", |(a, b)| a.len() <= 2 && b.len() <= 2),
        m in 1usize..=5,
        k in 1usize..=5,
        n in 1usize..=5,
        vector_a in any::<bool>(),
        vector_b in any::<bool>(),
        ta in any::<bool>(),
        tb in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // A 1-D operand has no batch axes.
        let vector_a = vector_a && batch_a.is_empty();
        let vector_b = vector_b && batch_b.is_empty();
        let mut sa = batch_a.clone();
        if vector_a { sa.push(k) } else { sa.extend([m, k]) }
        let mut sb = batch_b.clone();
        if vector_b { sb.push(k) } else { sb.extend([k, n]) }
        let a = make(&sa, seed, ta);
        let b = make(&sb, seed ^ 0xabcd, tb);
        let (av, bv) = (a.to_vec_f64(), b.to_vec_f64());
        let batch = broadcast_naive(&batch_a, &batch_b);
        let (rows, cols) = (if vector_a { 1 } else { m }, if vector_b { 1 } else { n });
        let mut want = Vec::new();
        for flat in 0..batch.iter().product::<usize>() {
            let bidx = unravel(flat, &batch);
            let (oa, ob) = (broadcast_source(&bidx, &batch_a), broadcast_source(&bidx, &batch_b));
            for i in 0..rows {
                for j in 0..cols {
                    let mut acc = 0.0;
                    for p in 0..k {
                        let x = if vector_a { av[p] } else { av[(oa * m + i) * k + p] };
                        let y = if vector_b { bv[p] } else { bv[(ob * k + p) * n + j] };
                        acc += x * y;
                    }
                    want.push(acc);
                }
            }
        }
        let mut want_shape = batch.clone();
        if !vector_a { want_shape.push(m) }
        if !vector_b { want_shape.push(n) }
        let y = a.matmul(&b).unwrap();
        prop_assert_eq!(y.shape(), &want_shape[..], "{:?} @ {:?}", sa, sb);
        for (got, w) in y.to_vec_f64().iter().zip(&want) {
            prop_assert!(same(*got, *w, 1e-12), "{:?} @ {:?}: {} vs {}", sa, sb, got, w);
        }
    }
}
