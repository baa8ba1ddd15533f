//! Forward values of every op on small hand-computed examples, plus the conventions (ties, kinks,
//! NaN) that a gradient check cannot see.

use seg_tensor::{DType, PadMode, Tensor};

fn f64s(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape).unwrap()
}

fn f32s(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape).unwrap()
}

fn i64s(values: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape).unwrap()
}

/// `0, 1, 2, ...` as f64 with `shape`.
fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::arange(0.0, n as f64, 1.0, DType::F64)
        .unwrap()
        .reshape(shape)
        .unwrap()
}

#[track_caller]
fn assert_close(actual: &Tensor, expected: &[f64], tol: f64) {
    let a = actual.to_vec_f64();
    assert_eq!(a.len(), expected.len(), "length of {a:?} vs {expected:?}");
    for (i, (x, y)) in a.iter().zip(expected).enumerate() {
        let ok = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= tol * (1.0 + y.abs());
        assert!(ok, "element {i}: {x} vs expected {y} (all: {a:?})");
    }
}

#[track_caller]
fn assert_exact(actual: &Tensor, shape: &[usize], expected: &[f64]) {
    assert_eq!(actual.shape(), shape);
    assert_eq!(actual.to_vec_f64(), expected);
}

fn grad_of(x: &Tensor, f: impl Fn(&Tensor) -> seg_tensor::Result<Tensor>) -> Vec<f64> {
    let leaf = x.requires_grad();
    let grads = f(&leaf).unwrap().sum_all().unwrap().backward().unwrap();
    grads.get(&leaf).unwrap().to_vec_f64()
}

// ----- unary -----

#[test]
fn unary_values() {
    let x = f64s(&[-2.0, -0.5, 0.0, 1.0, 3.0], &[5]);
    assert_close(&x.neg().unwrap(), &[2.0, 0.5, -0.0, -1.0, -3.0], 0.0);
    assert_close(&x.abs().unwrap(), &[2.0, 0.5, 0.0, 1.0, 3.0], 0.0);
    assert_close(&x.relu().unwrap(), &[0.0, 0.0, 0.0, 1.0, 3.0], 0.0);
    assert_close(&x.leaky_relu(0.1).unwrap(), &[-0.2, -0.05, 0.0, 1.0, 3.0], 1e-15);
    assert_close(&x.clamp(-1.0, 2.0).unwrap(), &[-1.0, -0.5, 0.0, 1.0, 2.0], 0.0);
    assert_close(&x.affine(2.0, 1.0).unwrap(), &[-3.0, 0.0, 1.0, 3.0, 7.0], 0.0);
    assert_close(&x.add_scalar(0.5).unwrap(), &[-1.5, 0.0, 0.5, 1.5, 3.5], 0.0);
    assert_close(&x.mul_scalar(-2.0).unwrap(), &[4.0, 1.0, -0.0, -2.0, -6.0], 0.0);
    assert_close(&x.powf(2.0).unwrap(), &[4.0, 0.25, 0.0, 1.0, 9.0], 1e-15);
    assert_close(
        &x.tanh().unwrap(),
        &[
            -0.9640275800758169,
            -0.46211715726000974,
            0.0,
            0.7615941559557649,
            0.9950547536867305,
        ],
        1e-15,
    );
    assert_close(
        &x.sigmoid().unwrap(),
        &[
            0.11920292202211755,
            0.3775406687981454,
            0.5,
            0.7310585786300049,
            0.9525741268224334,
        ],
        1e-15,
    );
    assert_close(
        &x.silu().unwrap(),
        &[
            -0.2384058440442351,
            -0.1887703343990727,
            0.0,
            0.7310585786300049,
            2.8577223804673,
        ],
        1e-14,
    );

    let p = f64s(&[1.0, std::f64::consts::E, 4.0, 0.25], &[4]);
    assert_close(&p.log().unwrap(), &[0.0, 1.0, 4f64.ln(), -(4f64.ln())], 1e-15);
    assert_close(&p.sqrt().unwrap(), &[1.0, std::f64::consts::E.sqrt(), 2.0, 0.5], 1e-15);
    assert_close(
        &p.powf(-0.5).unwrap(),
        &[1.0, 1.0 / std::f64::consts::E.sqrt(), 0.5, 2.0],
        1e-15,
    );
    assert_close(
        &f64s(&[0.0, 1.0, -1.0], &[3]).exp().unwrap(),
        &[1.0, std::f64::consts::E, 1.0 / std::f64::consts::E],
        1e-15,
    );
}

#[test]
fn gelu_known_values() {
    // PyTorch: F.gelu(torch.tensor([-3., -1., 0., 0.5, 1., 2.], dtype=torch.float64))
    let x = f64s(&[-3.0, -1.0, 0.0, 0.5, 1.0, 2.0], &[6]);
    let exact = [
        -0.00404969409489031,
        -0.15865525393145707,
        0.0,
        0.34573123063700656,
        0.8413447460685429,
        1.9544997361036416,
    ];
    assert_close(&x.gelu().unwrap(), &exact, 1e-13);
    // approximate="tanh"
    let tanh = [
        -0.0036373920817729943,
        -0.15880800939172324,
        0.0,
        0.34571400982514394,
        0.8411919906082768,
        1.954597694087775,
    ];
    assert_close(&x.gelu_tanh().unwrap(), &tanh, 1e-13);
    // The f32 path agrees to f32 precision.
    assert_close(&x.to_dtype(DType::F32).unwrap().gelu().unwrap(), &exact, 1e-6);
}

#[test]
fn softplus_threshold() {
    let x = f64s(&[30.0, 20.5, 20.0, 0.0, -30.0], &[5]);
    let y = x.softplus().unwrap().to_vec_f64();
    assert_eq!(y[0], 30.0, "above the threshold softplus is exactly x");
    assert_eq!(y[1], 20.5);
    assert!(
        (y[2] - (1.0 + 20f64.exp()).ln()).abs() < 1e-12,
        "at the threshold it is still ln(1+e^x)"
    );
    assert!((y[3] - std::f64::consts::LN_2).abs() < 1e-15);
    assert!(y[4] > 0.0 && (y[4] - (-30f64).exp()).abs() < 1e-25);
    let y32 = f32s(&[30.0, 100.0], &[2]).softplus().unwrap().to_vec::<f32>().unwrap();
    assert_eq!(y32, vec![30.0, 100.0]);
    // Gradient above the threshold is exactly 1.
    assert_eq!(grad_of(&f64s(&[30.0], &[1]), |t| t.softplus()), vec![1.0]);
}

#[test]
fn nan_propagates_through_unary_ops() {
    let x = f64s(&[f64::NAN], &[1]);
    for (name, y) in [
        ("relu", x.relu()),
        ("clamp", x.clamp(-1.0, 1.0)),
        ("leaky_relu", x.leaky_relu(0.1)),
        ("abs", x.abs()),
        ("sigmoid", x.sigmoid()),
        ("gelu", x.gelu()),
        ("softplus", x.softplus()),
    ] {
        assert!(y.unwrap().to_vec_f64()[0].is_nan(), "{name}(NaN) should be NaN");
    }
    assert!(f32s(&[f32::NAN], &[1]).relu().unwrap().to_vec_f64()[0].is_nan());
}

#[test]
fn unary_gradient_conventions() {
    // Derivatives at kinks follow PyTorch: relu'(0) = 0, abs'(0) = 0, leaky_relu'(0) = slope, clamp
    // passes the gradient at its bounds.
    let x = f64s(&[-1.0, 0.0, 1.0], &[3]);
    assert_eq!(grad_of(&x, |t| t.relu()), vec![0.0, 0.0, 1.0]);
    assert_eq!(grad_of(&x, |t| t.abs()), vec![-1.0, 0.0, 1.0]);
    assert_eq!(grad_of(&x, |t| t.leaky_relu(0.25)), vec![0.25, 0.25, 1.0]);
    assert_eq!(grad_of(&x, |t| t.clamp(-1.0, 0.5)), vec![1.0, 1.0, 0.0]);
    // x^0 is constant: gradient 0, also at 0.
    assert_eq!(grad_of(&x, |t| t.powf(0.0)), vec![0.0, 0.0, 0.0]);
    assert_eq!(grad_of(&f64s(&[0.0, 2.0], &[2]), |t| t.powf(2.0)), vec![0.0, 4.0]);
}

#[test]
fn unary_ops_reject_integer_dtypes() {
    let u = Tensor::from_vec(vec![1u8, 2], &[2]).unwrap();
    assert!(u.exp().is_err());
    assert!(i64s(&[1, 2], &[2]).relu().is_err());
}

// ----- binary -----

#[test]
fn binary_values_with_broadcasting() {
    let a = iota(&[2, 3]);
    let b = f64s(&[10.0, 20.0, 30.0], &[3]);
    assert_exact(&a.add(&b).unwrap(), &[2, 3], &[10.0, 21.0, 32.0, 13.0, 24.0, 35.0]);
    assert_exact(&a.sub(&b).unwrap(), &[2, 3], &[-10.0, -19.0, -28.0, -7.0, -16.0, -25.0]);
    assert_exact(&b.sub(&a).unwrap(), &[2, 3], &[10.0, 19.0, 28.0, 7.0, 16.0, 25.0]);
    let col = f64s(&[1.0, 2.0], &[2, 1]);
    assert_exact(&a.mul(&col).unwrap(), &[2, 3], &[0.0, 1.0, 2.0, 6.0, 8.0, 10.0]);
    assert_exact(&a.div(&col).unwrap(), &[2, 3], &[0.0, 1.0, 2.0, 1.5, 2.0, 2.5]);
    // [2, 1] with [3]: outer broadcast to [2, 3].
    assert_exact(&col.add(&b).unwrap(), &[2, 3], &[11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
    // A scalar on either side.
    let s = Tensor::scalar(2.0f64);
    assert_exact(&s.pow(&f64s(&[0.0, 1.0, 3.0], &[3])).unwrap(), &[3], &[1.0, 2.0, 8.0]);
    assert_exact(&f64s(&[3.0, 4.0], &[2]).pow(&s).unwrap(), &[2], &[9.0, 16.0]);
    assert_exact(&s.mul(&s).unwrap(), &[], &[4.0]);
    // Rank-3 broadcast [2, 1, 2] with [3, 1].
    let c = f64s(&[1.0, 2.0, 3.0, 4.0], &[2, 1, 2]);
    let d = f64s(&[0.0, 10.0, 100.0], &[3, 1]);
    assert_exact(
        &c.add(&d).unwrap(),
        &[2, 3, 2],
        &[1.0, 2.0, 11.0, 12.0, 101.0, 102.0, 3.0, 4.0, 13.0, 14.0, 103.0, 104.0],
    );
    // Transposed operand.
    assert_exact(
        &a.t().unwrap().add(&f64s(&[100.0, 200.0], &[2])).unwrap(),
        &[3, 2],
        &[100.0, 203.0, 101.0, 204.0, 102.0, 205.0],
    );
}

#[test]
fn maximum_minimum_nan_and_ties() {
    let a = f64s(&[1.0, 5.0, f64::NAN, 2.0], &[4]);
    let b = f64s(&[3.0, 4.0, 0.0, f64::NAN], &[4]);
    assert_close(&a.maximum(&b).unwrap(), &[3.0, 5.0, f64::NAN, f64::NAN], 0.0);
    assert_close(&a.minimum(&b).unwrap(), &[1.0, 4.0, f64::NAN, f64::NAN], 0.0);
    // At a tie each side gets half the gradient.
    let x = f64s(&[1.0, 2.0, 3.0], &[3]).requires_grad();
    let y = f64s(&[2.0, 2.0, 2.0], &[3]).requires_grad();
    let g = x.maximum(&y).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec_f64(), vec![0.0, 0.5, 1.0]);
    assert_eq!(g.get(&y).unwrap().to_vec_f64(), vec![1.0, 0.5, 0.0]);
}

#[test]
fn pow_gradient_at_zero() {
    // PyTorch: d/db a^b is 0 where a = 0 and b >= 0; d/da a^b is 0 where b = 0.
    let a = f64s(&[0.0, 0.0, 2.0], &[3]).requires_grad();
    let b = f64s(&[0.0, 2.0, 3.0], &[3]).requires_grad();
    let g = a.pow(&b).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&a).unwrap().to_vec_f64(), vec![0.0, 0.0, 12.0]);
    assert_close(g.get(&b).unwrap(), &[0.0, 0.0, 8.0 * 2f64.ln()], 1e-15);
}

#[test]
fn sum_to_shape_values() {
    let x = iota(&[2, 3]);
    assert_exact(&x.sum_to_shape(&[3]).unwrap(), &[3], &[3.0, 5.0, 7.0]);
    assert_exact(&x.sum_to_shape(&[2, 1]).unwrap(), &[2, 1], &[3.0, 12.0]);
    assert_exact(&x.sum_to_shape(&[1, 1]).unwrap(), &[1, 1], &[15.0]);
    assert_exact(&x.sum_to_shape(&[]).unwrap(), &[], &[15.0]);
    assert_exact(
        &x.sum_to_shape(&[2, 3]).unwrap(),
        &[2, 3],
        &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    );
}

#[test]
fn gradient_accumulates_over_reuse() {
    // y = x * x + x: dy/dx = 2x + 1.
    let x = f64s(&[1.0, -2.0, 3.0], &[3]);
    assert_eq!(grad_of(&x, |t| t.mul(t)?.add(t)), vec![3.0, -3.0, 7.0]);
    // Broadcast reuse: x [3] added to itself reshaped as a column [3, 1] -> [3, 3]; each element
    // appears in 3 rows and 3 columns.
    assert_eq!(grad_of(&x, |t| t.add(&t.reshape(&[3, 1])?)), vec![6.0, 6.0, 6.0]);
}

// ----- comparisons and where -----

#[test]
fn comparisons_and_where() {
    let a = f64s(&[1.0, 2.0, 3.0, f64::NAN], &[4]);
    let b = Tensor::scalar(2.0f64);
    let check = |t: Tensor, expected: &[u8]| {
        assert_eq!(t.dtype(), DType::U8);
        assert_eq!(t.to_vec::<u8>().unwrap(), expected);
    };
    check(a.eq(&b).unwrap(), &[0, 1, 0, 0]);
    check(a.ne(&b).unwrap(), &[1, 0, 1, 1]);
    check(a.lt(&b).unwrap(), &[1, 0, 0, 0]);
    check(a.le(&b).unwrap(), &[1, 1, 0, 0]);
    check(a.gt(&b).unwrap(), &[0, 0, 1, 0]);
    check(a.ge(&b).unwrap(), &[0, 1, 1, 0]);
    // Broadcast [2, 1] against [3] and integer dtypes.
    let r = i64s(&[1, 2], &[2, 1]);
    let c = i64s(&[0, 1, 2], &[3]);
    let m = r.le(&c).unwrap();
    assert_eq!(m.shape(), &[2, 3]);
    check(m.clone(), &[0, 1, 1, 0, 0, 1]);
    // where_: mask [2, 3], on_true [3], on_false scalar.
    let on_true = f64s(&[10.0, 20.0, 30.0], &[3]);
    let on_false = Tensor::scalar(-1.0f64);
    assert_exact(
        &m.where_(&on_true, &on_false).unwrap(),
        &[2, 3],
        &[-1.0, 20.0, 30.0, -1.0, -1.0, 30.0],
    );
    // Gradients of where_: on_true gets the mask's column counts, on_false the rest.
    let t = on_true.requires_grad();
    let f = on_false.requires_grad();
    let g = m.where_(&t, &f).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&t).unwrap().to_vec_f64(), vec![0.0, 1.0, 2.0]);
    assert_eq!(g.get(&f).unwrap().to_vec_f64(), vec![3.0]);
    // f32 comparisons.
    check(f32s(&[0.5, 1.5], &[2]).gt(&f32s(&[1.0], &[1])).unwrap(), &[0, 1]);
}

// ----- reductions -----

#[test]
fn sum_mean_over_dim_sets() {
    let x = iota(&[2, 3, 4]);
    let s = x.sum(&[1], false).unwrap();
    assert_exact(&s, &[2, 4], &[12.0, 15.0, 18.0, 21.0, 48.0, 51.0, 54.0, 57.0]);
    assert_eq!(x.sum(&[1], true).unwrap().shape(), &[2, 1, 4]);
    assert_exact(&x.sum(&[0, 2], false).unwrap(), &[3], &[60.0, 92.0, 124.0]);
    assert_exact(&x.sum(&[-1, 0], true).unwrap(), &[1, 3, 1], &[60.0, 92.0, 124.0]);
    assert_exact(&x.sum(&[], false).unwrap(), &[], &[276.0]);
    assert_exact(&x.sum(&[], true).unwrap(), &[1, 1, 1], &[276.0]);
    assert_exact(&x.sum_all().unwrap(), &[], &[276.0]);
    assert_exact(&x.mean(&[0, 1, 2], false).unwrap(), &[], &[11.5]);
    assert_exact(&x.mean_all().unwrap(), &[], &[11.5]);
    assert_exact(
        &x.mean(&[2], false).unwrap(),
        &[2, 3],
        &[1.5, 5.5, 9.5, 13.5, 17.5, 21.5],
    );
    // On a permuted view: p[k, i, j] = x[i, j, k] = 12 i + 4 j + k; summing over i gives 12 + 8 j + 2 k.
    let p = x.permute(&[2, 0, 1]).unwrap();
    assert_exact(
        &p.sum(&[1], false).unwrap(),
        &[4, 3],
        &[12.0, 20.0, 28.0, 14.0, 22.0, 30.0, 16.0, 24.0, 32.0, 18.0, 26.0, 34.0],
    );
    // Reducing a rank-0 tensor.
    assert_exact(&Tensor::scalar(3.0f64).sum(&[], false).unwrap(), &[], &[3.0]);
    // f32 sums accumulate in f64: 1e8 + 1 + ... would lose the ones in f32.
    let mut v = vec![1.0f32; 1000];
    v[0] = 1e8;
    assert_eq!(
        f32s(&v, &[1000]).sum_all().unwrap().to_vec::<f32>().unwrap(),
        vec![100_000_999.0]
    );
}

#[test]
fn var_with_corrections() {
    let x = f64s(&[1.0, 2.0, 3.0, 4.0], &[4]);
    assert_close(&x.var(&[0], 1, false).unwrap(), &[5.0 / 3.0], 1e-15);
    assert_close(&x.var(&[0], 0, false).unwrap(), &[1.25], 1e-15);
    let m = f64s(&[1.0, 3.0, 2.0, 6.0, 0.0, 0.0], &[2, 3]);
    // Per row: [1, 3, 2] mean 2 -> squares 1 + 1 + 0 = 2; [6, 0, 0] mean 2 -> 16 + 4 + 4 = 24.
    assert_close(&m.var(&[1], 1, false).unwrap(), &[1.0, 12.0], 1e-15);
    assert_close(&m.var(&[1], 0, true).unwrap(), &[2.0 / 3.0, 8.0], 1e-15);
    assert_eq!(m.var(&[1], 0, true).unwrap().shape(), &[2, 1]);
    // Per column: [1, 6] -> 12.5 (unbiased); [3, 0] -> 4.5; [2, 0] -> 2.
    assert_close(&m.var(&[0], 1, false).unwrap(), &[12.5, 4.5, 2.0], 1e-15);
    // All axes: mean 2.
    assert_close(
        &m.var(&[], 1, false).unwrap(),
        &[(1.0 + 1.0 + 0.0 + 16.0 + 4.0 + 4.0) / 5.0],
        1e-15,
    );
}

#[test]
fn logsumexp_values() {
    let x = f64s(&[0.0, 3f64.ln(), 1000.0, 1000.0], &[2, 2]);
    assert_close(
        &x.logsumexp(&[1], false).unwrap(),
        &[4f64.ln(), 1000.0 + 2f64.ln()],
        1e-15,
    );
    assert_close(
        &x.logsumexp(&[0], true).unwrap(),
        &[1000.0, 1000.0 + (1.0 + (-1000.0f64).exp()).ln()],
        1e-15,
    );
    let ninf = f64s(&[f64::NEG_INFINITY, f64::NEG_INFINITY, 0.0, f64::NEG_INFINITY], &[2, 2]);
    assert_close(&ninf.logsumexp(&[1], false).unwrap(), &[f64::NEG_INFINITY, 0.0], 0.0);
    let nan = f64s(&[1.0, f64::NAN], &[2]);
    assert!(nan.logsumexp(&[0], false).unwrap().to_vec_f64()[0].is_nan());
    // f32 with large inputs.
    assert_close(
        &f32s(&[100.0, 100.0], &[2]).logsumexp(&[0], false).unwrap(),
        &[100.0 + 2f64.ln()],
        1e-6,
    );
}

#[test]
fn max_min_argmax_argmin() {
    let x = f64s(&[3.0, 7.0, 7.0, 1.0, -2.0, 5.0, -2.0, 0.0], &[2, 4]);
    let (v, i) = x.max_dim(1, false).unwrap();
    assert_exact(&v, &[2], &[7.0, 5.0]);
    assert_eq!(i.dtype(), DType::I64);
    assert_eq!(i.to_vec::<i64>().unwrap(), vec![1, 1], "ties take the first index");
    let (v, i) = x.min_dim(1, true).unwrap();
    assert_exact(&v, &[2, 1], &[1.0, -2.0]);
    assert_eq!(i.to_vec::<i64>().unwrap(), vec![3, 0]);
    let (v, i) = x.max_dim(0, false).unwrap();
    assert_exact(&v, &[4], &[3.0, 7.0, 7.0, 1.0]);
    assert_eq!(i.to_vec::<i64>().unwrap(), vec![0, 0, 0, 0]);
    assert_eq!(x.argmax(-1, false).unwrap().to_vec::<i64>().unwrap(), vec![1, 1]);
    assert_eq!(x.argmin(-1, false).unwrap().to_vec::<i64>().unwrap(), vec![3, 0]);
    assert_eq!(x.argmin(0, true).unwrap().shape(), &[1, 4]);
    // All equal: index 0.
    assert_eq!(
        f64s(&[2.0; 5], &[5]).argmax(0, false).unwrap().to_vec::<i64>().unwrap(),
        vec![0]
    );
    assert_eq!(
        f64s(&[2.0; 5], &[5]).argmin(0, false).unwrap().to_vec::<i64>().unwrap(),
        vec![0]
    );
    // On a transposed view.
    assert_eq!(
        x.t().unwrap().argmax(0, false).unwrap().to_vec::<i64>().unwrap(),
        vec![1, 1]
    );
    // Integer dtypes.
    let (v, i) = i64s(&[4, 9, 9, -1], &[4]).max_dim(0, false).unwrap();
    assert_eq!(
        (v.to_vec::<i64>().unwrap(), i.to_vec::<i64>().unwrap()),
        (vec![9], vec![1])
    );
    // Rank 0.
    let (v, i) = Tensor::scalar(5.0f64).max_dim(0, false).unwrap();
    assert_eq!((v.shape(), i.shape()), (&[][..], &[][..]));
    assert_eq!(v.to_vec_f64(), vec![5.0]);
}

#[test]
fn max_propagates_nan() {
    let x = f64s(&[1.0, f64::NAN, 3.0, f64::NAN, 2.0, 1.0], &[2, 3]);
    let (v, i) = x.max_dim(1, false).unwrap();
    assert!(v.to_vec_f64().iter().all(|v| v.is_nan()), "{:?}", v.to_vec_f64());
    assert_eq!(i.to_vec::<i64>().unwrap(), vec![1, 0], "the index of the first NaN");
    let (v, i) = x.min_dim(1, false).unwrap();
    assert!(v.to_vec_f64().iter().all(|v| v.is_nan()));
    assert_eq!(i.to_vec::<i64>().unwrap(), vec![1, 0]);
    assert_eq!(x.argmax(0, false).unwrap().to_vec::<i64>().unwrap(), vec![1, 0, 0]);
}

#[test]
fn max_gradient_goes_to_the_first_maximum() {
    let x = f64s(&[1.0, 4.0, 4.0, 2.0, 0.0, 3.0], &[2, 3]);
    assert_eq!(
        grad_of(&x, |t| Ok(t.max_dim(1, false)?.0)),
        vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        grad_of(&x, |t| Ok(t.min_dim(0, true)?.0)),
        vec![1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    );
}

// ----- softmax -----

#[test]
fn softmax_values() {
    let x = f64s(&[1.0, 2.0, 3.0, 0.0, 0.0, 0.0], &[2, 3]);
    let y = x.softmax(1).unwrap();
    let e = [1f64.exp(), 2f64.exp(), 3f64.exp()];
    let s: f64 = e.iter().sum();
    assert_close(
        &y,
        &[e[0] / s, e[1] / s, e[2] / s, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
        1e-15,
    );
    assert_close(&y.sum(&[1], false).unwrap(), &[1.0, 1.0], 1e-15);
    assert_close(
        &x.log_softmax(1).unwrap(),
        &[
            1.0 - s.ln(),
            2.0 - s.ln(),
            3.0 - s.ln(),
            -(3f64.ln()),
            -(3f64.ln()),
            -(3f64.ln()),
        ],
        1e-15,
    );
    // Over dim 0: pairs (1, 0), (2, 0), (3, 0).
    let y0 = x.softmax(0).unwrap();
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    assert_close(
        &y0,
        &[
            sig(1.0),
            sig(2.0),
            sig(3.0),
            1.0 - sig(1.0),
            1.0 - sig(2.0),
            1.0 - sig(3.0),
        ],
        1e-15,
    );
    // Over the middle axis of a rank-3 tensor: every (i, :, k) line sums to 1.
    let z = iota(&[2, 3, 4]).mul_scalar(0.7).unwrap().sin_like();
    let sums = z.softmax(1).unwrap().sum(&[1], false).unwrap();
    assert_close(&sums, &[1.0; 8], 1e-15);
    let lse = z.log_softmax(1).unwrap().exp().unwrap().sum(&[1], false).unwrap();
    assert_close(&lse, &[1.0; 8], 1e-15);
}

#[test]
fn softmax_of_large_inputs_is_finite() {
    for t in [
        f64s(&[1000.0, 1001.0], &[2]),
        f64s(&[-1000.0, -1001.0], &[2]).neg().unwrap(),
    ] {
        let y = t.softmax(0).unwrap().to_vec_f64();
        assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
    }
    let y = f64s(&[1000.0, 1001.0], &[2]).softmax(0).unwrap();
    assert_close(&y, &[0.2689414213699951, 0.7310585786300049], 1e-15);
    let l = f64s(&[1000.0, 1001.0], &[2]).log_softmax(0).unwrap();
    assert_close(&l, &[-1.3132616875182228, -0.31326168751822286], 1e-15);
    let y32 = f32s(&[1000.0, 1001.0], &[2]).softmax(-1).unwrap();
    assert_close(&y32, &[0.2689414213699951, 0.7310585786300049], 1e-6);
    // Large logits must not cost precision: log_softmax is (x - max) - ln(sum), not x - lse.
    let l32 = f32s(&[1000.0, 1001.0], &[2]).log_softmax(-1).unwrap();
    assert_close(&l32, &[-1.3132616875182228, -0.31326168751822286], 1e-6);
    let l32 = f32s(&[-1000.0, 1000.0], &[2]).log_softmax(-1).unwrap();
    assert_close(&l32, &[-2000.0, 0.0], 1e-6);
}

/// `sin`, which seg has no op for, computed outside the graph to get irregular test data.
trait SinLike {
    fn sin_like(&self) -> Tensor;
}
impl SinLike for Tensor {
    fn sin_like(&self) -> Tensor {
        let v: Vec<f64> = self.to_vec_f64().iter().map(|x| x.sin()).collect();
        Tensor::from_vec(v, self.shape()).unwrap()
    }
}

// ----- matmul and linear -----

#[test]
fn matmul_shapes_and_values() {
    let v = f64s(&[1.0, 2.0, 3.0], &[3]);
    let m = iota(&[3, 2]); // [[0, 1], [2, 3], [4, 5]]
    let dot = v.matmul(&v).unwrap();
    assert_exact(&dot, &[], &[14.0]);
    assert_exact(&v.matmul(&m).unwrap(), &[2], &[16.0, 22.0]);
    assert_exact(&m.t().unwrap().matmul(&v).unwrap(), &[2], &[16.0, 22.0]);
    let a = f64s(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let b = f64s(&[5.0, 6.0, 7.0, 8.0], &[2, 2]);
    assert_exact(&a.matmul(&b).unwrap(), &[2, 2], &[19.0, 22.0, 43.0, 50.0]);
    assert_exact(&a.t().unwrap().matmul(&b).unwrap(), &[2, 2], &[26.0, 30.0, 38.0, 44.0]);
    assert_exact(&a.matmul(&b.t().unwrap()).unwrap(), &[2, 2], &[17.0, 23.0, 39.0, 53.0]);
    // Shapes of the promotion and broadcasting rules.
    let shape = |sa: &[usize], sb: &[usize]| iota(sa).matmul(&iota(sb)).unwrap().shape().to_vec();
    assert_eq!(shape(&[3], &[2, 3, 4]), vec![2, 4]);
    assert_eq!(shape(&[2, 5, 3], &[3]), vec![2, 5]);
    assert_eq!(shape(&[2, 1, 4, 3], &[5, 3, 2]), vec![2, 5, 4, 2]);
    assert_eq!(shape(&[2, 4, 3], &[3, 2]), vec![2, 4, 2]);
    assert_eq!(shape(&[4, 3], &[2, 3, 2]), vec![2, 4, 2]);
    assert_eq!(shape(&[1, 3], &[3, 1]), vec![1, 1]);
    assert_eq!(shape(&[3], &[3, 1]), vec![1]);
    // Batched values: batch 0 is a @ b, batch 1 is b @ a.
    let ab = Tensor::stack(&[&a, &b], 0).unwrap();
    let ba = Tensor::stack(&[&b, &a], 0).unwrap();
    assert_exact(
        &ab.matmul(&ba).unwrap(),
        &[2, 2, 2],
        &[19.0, 22.0, 43.0, 50.0, 23.0, 34.0, 31.0, 46.0],
    );
    // Broadcast batch: [2, 2, 2] @ [2, 2] applies the same right matrix to both.
    assert_exact(
        &ab.matmul(&b).unwrap(),
        &[2, 2, 2],
        &[19.0, 22.0, 43.0, 50.0, 67.0, 78.0, 91.0, 106.0],
    );
    // An empty inner axis gives zeros of the right shape.
    let z = Tensor::zeros(&[2, 3, 0], DType::F32)
        .matmul(&Tensor::zeros(&[0, 4], DType::F32))
        .unwrap();
    assert_exact(&z, &[2, 3, 4], &[0.0; 24]);
    let z = Tensor::zeros(&[0], DType::F64)
        .matmul(&Tensor::zeros(&[0], DType::F64))
        .unwrap();
    assert_exact(&z, &[], &[0.0]);
    // f32.
    let r = f32s(&[1.0, 2.0, 3.0, 4.0], &[2, 2])
        .matmul(&f32s(&[1.0, 1.0], &[2]))
        .unwrap();
    assert_eq!(r.to_vec::<f32>().unwrap(), vec![3.0, 7.0]);
}

#[test]
fn linear_values() {
    let x = f64s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let w = f64s(&[1.0, 0.0, -1.0, 0.5, 0.5, 0.5], &[2, 3]);
    let b = f64s(&[10.0, -10.0], &[2]);
    assert_exact(&x.linear(&w, None).unwrap(), &[2, 2], &[-2.0, 3.0, -2.0, 7.5]);
    assert_exact(&x.linear(&w, Some(&b)).unwrap(), &[2, 2], &[8.0, -7.0, 8.0, -2.5]);
    let v = f64s(&[1.0, 2.0, 3.0], &[3]);
    assert_exact(&v.linear(&w, Some(&b)).unwrap(), &[2], &[8.0, -7.0]);
    let x3 = x.reshape(&[2, 1, 3]).unwrap();
    assert_exact(&x3.linear(&w, None).unwrap(), &[2, 1, 2], &[-2.0, 3.0, -2.0, 7.5]);
}

// ----- cat, stack, split, chunk -----

#[test]
fn cat_stack_split_chunk_values() {
    let a = iota(&[2, 2]);
    let b = iota(&[2, 1]).add_scalar(10.0).unwrap();
    assert_exact(
        &Tensor::cat(&[&a, &b], 1).unwrap(),
        &[2, 3],
        &[0.0, 1.0, 10.0, 2.0, 3.0, 11.0],
    );
    assert_exact(
        &Tensor::cat(&[&a, &b.t().unwrap()], 0).unwrap(),
        &[3, 2],
        &[0.0, 1.0, 2.0, 3.0, 10.0, 11.0],
    );
    assert_exact(&Tensor::cat(&[&a], -1).unwrap(), &[2, 2], &[0.0, 1.0, 2.0, 3.0]);
    // Integer tensors can be joined too.
    assert_eq!(
        Tensor::cat(&[&i64s(&[1], &[1]), &i64s(&[2, 3], &[2])], 0)
            .unwrap()
            .to_vec::<i64>()
            .unwrap(),
        vec![1, 2, 3]
    );
    let c = iota(&[2, 2]).add_scalar(4.0).unwrap();
    assert_exact(
        &Tensor::stack(&[&a, &c], 0).unwrap(),
        &[2, 2, 2],
        &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
    );
    assert_exact(
        &Tensor::stack(&[&a, &c], 1).unwrap(),
        &[2, 2, 2],
        &[0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0],
    );
    assert_exact(
        &Tensor::stack(&[&a, &c], -1).unwrap(),
        &[2, 2, 2],
        &[0.0, 4.0, 1.0, 5.0, 2.0, 6.0, 3.0, 7.0],
    );

    let x = iota(&[2, 5]);
    let sizes = |v: &[Tensor]| v.iter().map(|t| t.shape()[1]).collect::<Vec<_>>();
    let parts = x.split(2, 1).unwrap();
    assert_eq!(sizes(&parts), vec![2, 2, 1]);
    assert_exact(&parts[2], &[2, 1], &[4.0, 9.0]);
    assert_exact(&parts[1], &[2, 2], &[2.0, 3.0, 7.0, 8.0]);
    let parts = x.split_sizes(&[1, 4], -1).unwrap();
    assert_exact(&parts[0], &[2, 1], &[0.0, 5.0]);
    assert_exact(&parts[1], &[2, 4], &[1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0, 9.0]);
    assert_eq!(sizes(&x.chunk(2, 1).unwrap()), vec![3, 2]);
    assert_eq!(sizes(&x.chunk(5, 1).unwrap()), vec![1, 1, 1, 1, 1]);
    assert_eq!(sizes(&x.chunk(9, 1).unwrap()), vec![1, 1, 1, 1, 1]);
    // torch.chunk(6 elements, 4) gives 3 chunks of 2.
    assert_eq!(iota(&[6]).chunk(4, 0).unwrap().len(), 3);
    let rows = x.chunk(2, 0).unwrap();
    assert_exact(&rows[1], &[1, 5], &[5.0, 6.0, 7.0, 8.0, 9.0]);
    // Splitting and joining round-trips.
    let parts = x.split(3, 1).unwrap();
    assert_eq!(
        Tensor::cat(&parts.iter().collect::<Vec<_>>(), 1).unwrap().to_vec_f64(),
        x.to_vec_f64()
    );
}

// ----- pad and roll -----

#[test]
fn pad_modes_1d() {
    let x = f64s(&[1.0, 2.0, 3.0, 4.0], &[4]);
    let pad = |mode| x.pad(&[2, 1], mode, 9.0).unwrap();
    assert_exact(&pad(PadMode::Constant), &[7], &[9.0, 9.0, 1.0, 2.0, 3.0, 4.0, 9.0]);
    assert_exact(&pad(PadMode::Reflect), &[7], &[3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0]);
    assert_exact(&pad(PadMode::Replicate), &[7], &[1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 4.0]);
    assert_exact(&pad(PadMode::Circular), &[7], &[3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0]);
    // Maximal pads.
    assert_exact(
        &x.pad(&[3, 3], PadMode::Reflect, 0.0).unwrap(),
        &[10],
        &[4.0, 3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0],
    );
    assert_exact(
        &x.pad(&[4, 0], PadMode::Circular, 0.0).unwrap(),
        &[8],
        &[1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0],
    );
    // Negative constant pads crop.
    assert_exact(&x.pad(&[-1, -2], PadMode::Constant, 0.0).unwrap(), &[1], &[2.0]);
    assert_exact(
        &x.pad(&[-1, 1], PadMode::Constant, 7.0).unwrap(),
        &[4],
        &[2.0, 3.0, 4.0, 7.0],
    );
    assert_eq!(PadMode::parse("reflect").unwrap(), PadMode::Reflect);
    assert!(PadMode::parse("mirror").is_err());
}

#[test]
fn pad_order_and_higher_rank() {
    // torch pad order: (last_before, last_after, second_last_before, second_last_after).
    let x = iota(&[2, 2]);
    assert_exact(
        &x.pad(&[1, 0, 0, 1], PadMode::Constant, -1.0).unwrap(),
        &[3, 3],
        &[-1.0, 0.0, 1.0, -1.0, 2.0, 3.0, -1.0, -1.0, -1.0],
    );
    assert_exact(
        &x.pad(&[1, 1, 1, 0], PadMode::Replicate, 0.0).unwrap(),
        &[3, 4],
        &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
    );
    let y = iota(&[1, 3, 3]);
    assert_exact(
        &y.pad(&[1, 1, 1, 1], PadMode::Reflect, 0.0)
            .unwrap()
            .narrow(1, 0, 1)
            .unwrap(),
        &[1, 1, 5],
        &[4.0, 3.0, 4.0, 5.0, 4.0],
    );
    assert_exact(
        &y.pad(&[0, 0, 1, 0], PadMode::Circular, 0.0).unwrap(),
        &[1, 4, 3],
        &[6.0, 7.0, 8.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    );
    // Padding a transposed view reads it in its logical order.
    assert_exact(
        &x.t().unwrap().pad(&[0, 1], PadMode::Replicate, 0.0).unwrap(),
        &[2, 3],
        &[0.0, 2.0, 2.0, 1.0, 3.0, 3.0],
    );
    // Integer tensors pad too.
    assert_eq!(
        i64s(&[5, 6], &[2])
            .pad(&[1, 1], PadMode::Constant, 0.0)
            .unwrap()
            .to_vec::<i64>()
            .unwrap(),
        vec![0, 5, 6, 0]
    );
    // Reflect's gradient adds up the positions read twice: [1,2,3,4] padded (2, 1) reads index 2
    // three times and 1 twice.
    assert_eq!(
        grad_of(&f64s(&[1.0, 2.0, 3.0, 4.0], &[4]), |t| t.pad(
            &[2, 1],
            PadMode::Reflect,
            0.0
        )),
        vec![1.0, 2.0, 3.0, 1.0]
    );
    assert_eq!(
        grad_of(&f64s(&[1.0, 2.0, 3.0, 4.0], &[4]), |t| t.pad(
            &[2, 1],
            PadMode::Constant,
            5.0
        )),
        vec![1.0, 1.0, 1.0, 1.0]
    );
}

#[test]
fn roll_values() {
    let x = f64s(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5]);
    assert_exact(&x.roll(&[2], &[0]).unwrap(), &[5], &[4.0, 5.0, 1.0, 2.0, 3.0]);
    assert_exact(&x.roll(&[-1], &[0]).unwrap(), &[5], &[2.0, 3.0, 4.0, 5.0, 1.0]);
    assert_exact(&x.roll(&[-6], &[-1]).unwrap(), &[5], &[2.0, 3.0, 4.0, 5.0, 1.0]);
    assert_exact(&x.roll(&[7], &[0]).unwrap(), &[5], &[4.0, 5.0, 1.0, 2.0, 3.0]);
    assert_exact(&x.roll(&[0], &[0]).unwrap(), &[5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
    let m = iota(&[2, 3]);
    assert_exact(&m.roll(&[1], &[1]).unwrap(), &[2, 3], &[2.0, 0.0, 1.0, 5.0, 3.0, 4.0]);
    assert_exact(
        &m.roll(&[1, -1], &[0, 1]).unwrap(),
        &[2, 3],
        &[4.0, 5.0, 3.0, 1.0, 2.0, 0.0],
    );
    // Without dims, the flattened tensor rolls.
    assert_exact(&m.roll(&[1], &[]).unwrap(), &[2, 3], &[5.0, 0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_exact(&m.roll(&[-2], &[]).unwrap(), &[2, 3], &[2.0, 3.0, 4.0, 5.0, 0.0, 1.0]);
    // A transposed view rolls in its logical order.
    assert_exact(
        &m.t().unwrap().roll(&[1], &[0]).unwrap(),
        &[3, 2],
        &[2.0, 5.0, 0.0, 3.0, 1.0, 4.0],
    );
}

// ----- indexing -----

#[test]
fn gather_scatter_add_index_select_values() {
    let x = iota(&[3, 4]);
    let idx = i64s(&[3, 0, 1, 1, 0, 2], &[3, 2]);
    assert_exact(&x.gather(1, &idx).unwrap(), &[3, 2], &[3.0, 0.0, 5.0, 5.0, 8.0, 10.0]);
    let idx0 = i64s(&[2, 0, 1, 2], &[1, 4]);
    assert_exact(&x.gather(0, &idx0).unwrap(), &[1, 4], &[8.0, 1.0, 6.0, 11.0]);
    // On a transposed view: x.t() is [4, 3].
    assert_exact(
        &x.t().unwrap().gather(0, &i64s(&[3, 0, 1], &[1, 3])).unwrap(),
        &[1, 3],
        &[3.0, 4.0, 9.0],
    );
    // scatter_add accumulates repeated targets, out of place.
    let base = Tensor::zeros(&[2, 4], DType::F64);
    let src = f64s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let sidx = i64s(&[0, 0, 3, 1, 2, 1], &[2, 3]);
    let out = base.scatter_add(1, &sidx, &src).unwrap();
    assert_exact(&out, &[2, 4], &[3.0, 0.0, 0.0, 3.0, 0.0, 10.0, 5.0, 0.0]);
    assert_eq!(base.to_vec_f64(), vec![0.0; 8], "scatter_add does not modify its input");
    let out0 = Tensor::ones(&[3, 2], DType::F64)
        .scatter_add(0, &i64s(&[2, 2], &[1, 2]), &f64s(&[5.0, 7.0], &[1, 2]))
        .unwrap();
    assert_exact(&out0, &[3, 2], &[1.0, 1.0, 1.0, 1.0, 6.0, 8.0]);
    // index_select with repeats, along each axis.
    assert_exact(
        &x.index_select(0, &i64s(&[2, 0, 2], &[3])).unwrap(),
        &[3, 4],
        &[8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 10.0, 11.0],
    );
    assert_exact(
        &x.index_select(-1, &i64s(&[3, 1], &[2])).unwrap(),
        &[3, 2],
        &[3.0, 1.0, 7.0, 5.0, 11.0, 9.0],
    );
    assert_exact(&x.index_select(1, &i64s(&[], &[0])).unwrap(), &[3, 0], &[]);
    assert_exact(
        &x.t().unwrap().index_select(1, &i64s(&[1], &[1])).unwrap(),
        &[4, 1],
        &[4.0, 5.0, 6.0, 7.0],
    );
    // Gradients of gather and index_select add up repeated reads.
    assert_eq!(
        grad_of(&x, |t| t.gather(1, &idx)),
        vec![1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    );
    assert_eq!(
        grad_of(&iota(&[3]), |t| t.index_select(0, &i64s(&[2, 0, 2, 2], &[4]))),
        vec![1.0, 0.0, 3.0]
    );
}

#[test]
fn one_hot_values() {
    let labels = i64s(&[0, 2, 1, 2], &[2, 2]);
    let oh = labels.one_hot(Some(3), DType::F32).unwrap();
    assert_eq!(oh.shape(), &[2, 2, 3]);
    assert_eq!(oh.dtype(), DType::F32);
    assert_eq!(
        oh.to_vec::<f32>().unwrap(),
        vec![1., 0., 0., 0., 0., 1., 0., 1., 0., 0., 0., 1.]
    );
    let inferred = labels.one_hot(None, DType::I64).unwrap();
    assert_eq!(inferred.shape(), &[2, 2, 3]);
    assert_eq!(inferred.to_vec::<i64>().unwrap()[3..6], [0, 0, 1]);
    let wide = i64s(&[1], &[1]).one_hot(Some(4), DType::U8).unwrap();
    assert_eq!(wide.to_vec::<u8>().unwrap(), vec![0, 1, 0, 0]);
    let scalar = Tensor::scalar(1i64).one_hot(Some(2), DType::F64).unwrap();
    assert_exact(&scalar, &[2], &[0.0, 1.0]);
}

// ----- views -----

#[test]
fn view_values() {
    let x = iota(&[2, 3, 4]);
    assert_exact(&x.reshape(&[4, 6]).unwrap(), &[4, 6], &iota(&[24]).to_vec_f64());
    assert_eq!(x.view(&[2, -1]).unwrap().shape(), &[2, 12]);
    assert_eq!(x.view(&[-1]).unwrap().shape(), &[24]);
    assert_eq!(x.flatten(0, 1).unwrap().shape(), &[6, 4]);
    assert_eq!(x.flatten(-2, -1).unwrap().shape(), &[2, 12]);
    assert_eq!(Tensor::scalar(1.0f64).flatten(0, -1).unwrap().shape(), &[1]);
    let p = x.permute(&[2, 0, 1]).unwrap();
    assert_eq!(p.shape(), &[4, 2, 3]);
    assert!(!p.is_contiguous());
    assert_eq!(p.to_vec_f64()[..7], [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 1.0]);
    let c = p.contiguous().unwrap();
    assert!(c.is_contiguous());
    assert_eq!(c.to_vec_f64(), p.to_vec_f64());
    // Reshaping a permuted view reads it in its logical order.
    assert_eq!(p.reshape(&[24]).unwrap().to_vec_f64(), p.to_vec_f64());
    let tr = x.transpose(0, 2).unwrap();
    assert_eq!(tr.shape(), &[4, 3, 2]);
    assert_eq!(tr.to_vec_f64()[..4], [0.0, 12.0, 4.0, 16.0]);
    assert_exact(&iota(&[2, 3]).t().unwrap(), &[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_exact(
        &x.narrow(1, 2, 1).unwrap(),
        &[2, 1, 4],
        &[8.0, 9.0, 10.0, 11.0, 20.0, 21.0, 22.0, 23.0],
    );
    assert_exact(&x.narrow(0, 1, 0).unwrap(), &[0, 3, 4], &[]);
    // Narrow of a narrow of a transpose.
    assert_exact(
        &x.transpose(1, 2)
            .unwrap()
            .narrow(1, 1, 2)
            .unwrap()
            .narrow(0, 1, 1)
            .unwrap(),
        &[1, 2, 3],
        &[13.0, 17.0, 21.0, 14.0, 18.0, 22.0],
    );
    let r = f64s(&[1.0, 2.0], &[2, 1]);
    assert_exact(
        &r.broadcast_to(&[2, 3]).unwrap(),
        &[2, 3],
        &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0],
    );
    assert_exact(&r.broadcast_to(&[2, 2, 1]).unwrap(), &[2, 2, 1], &[1.0, 2.0, 1.0, 2.0]);
    assert_exact(
        &r.expand(&[3, -1, 2]).unwrap(),
        &[3, 2, 2],
        &[1., 1., 2., 2., 1., 1., 2., 2., 1., 1., 2., 2.],
    );
    assert_eq!(x.unsqueeze(0).unwrap().shape(), &[1, 2, 3, 4]);
    assert_eq!(x.unsqueeze(3).unwrap().shape(), &[2, 3, 4, 1]);
    assert_eq!(x.unsqueeze(-2).unwrap().shape(), &[2, 3, 1, 4]);
    assert_eq!(
        x.squeeze(0).unwrap().shape(),
        &[2, 3, 4],
        "squeezing a non-1 axis is a no-op"
    );
    assert_exact(&r.squeeze(-1).unwrap(), &[2], &[1.0, 2.0]);
    assert_exact(
        &p.unsqueeze(1).unwrap().squeeze(1).unwrap(),
        &[4, 2, 3],
        &p.to_vec_f64(),
    );
    assert_eq!(x.dim(-1).unwrap(), 4);
}

#[test]
fn dtype_conversions() {
    let x = f64s(&[-1.7, -0.5, 0.0, 0.5, 2.9, 300.0], &[6]);
    assert_eq!(
        x.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(),
        vec![-1, 0, 0, 0, 2, 300]
    );
    assert_eq!(
        x.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap(),
        vec![-1.7f32, -0.5, 0.0, 0.5, 2.9, 300.0]
    );
    let h = x.to_dtype(DType::F16).unwrap();
    assert_eq!(h.dtype(), DType::F16);
    assert_close(&h, &[-1.7, -0.5, 0.0, 0.5, 2.9, 300.0], 1e-3);
    let bf = f64s(&[1.0 + 1.0 / 256.0], &[1]).to_dtype(DType::BF16).unwrap();
    assert_eq!(bf.to_vec_f64(), vec![1.0], "bf16 rounds to nearest even");
    assert_eq!(
        f64s(&[3.0, 255.0], &[2])
            .to_dtype(DType::U8)
            .unwrap()
            .to_vec::<u8>()
            .unwrap(),
        vec![3, 255]
    );
    assert_eq!(
        Tensor::from_vec(vec![1u8, 0], &[2])
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        vec![1.0, 0.0]
    );
    // Converting a transposed view keeps its logical order.
    assert_eq!(
        iota(&[2, 3])
            .t()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    );
    // Same dtype: no conversion.
    assert_eq!(x.to_dtype(DType::F64).unwrap().to_vec_f64(), x.to_vec_f64());
}

#[test]
fn flip_reverses_the_named_axes() {
    let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32)
        .unwrap()
        .reshape(&[2, 3])
        .unwrap();
    assert_eq!(
        x.flip(&[1]).unwrap().to_vec::<f32>().unwrap(),
        vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]
    );
    assert_eq!(
        x.flip(&[0, -1]).unwrap().to_vec::<f32>().unwrap(),
        vec![5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    );
    assert!(x.flip(&[2]).is_err());
}
