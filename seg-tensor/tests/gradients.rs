//! Gradient checks: autodiff against f64 central differences for every differentiable op, on
//! contiguous and non-contiguous inputs, with broadcasting and with tensors used more than once.

use seg_tensor::gradcheck::{check, check_with, GradCheck};
use seg_tensor::{DType, PadMode, Result, Tensor, Unary};

/// Standard normal f64 values.
fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, seed, DType::F64).unwrap()
}

/// Uniform f64 values in `[low, high)`.
fn uniform(shape: &[usize], low: f64, high: f64, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, low, high, seed, DType::F64).unwrap()
}

/// Values of either sign at least 0.2 away from 0 (away from the kinks of relu, abs, ...).
fn away_from_zero(shape: &[usize], seed: u64) -> Tensor {
    let v: Vec<f64> = randn(shape, seed)
        .to_vec_f64()
        .into_iter()
        .map(|x| x.signum() * (0.2 + x.abs()))
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// Distinct values (a shuffled arange, scaled) so that max/min have no ties.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut keyed: Vec<(f64, usize)> = randn(&[n], seed).to_vec_f64().into_iter().zip(0..n).collect();
    keyed.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let mut v = vec![0.0; n];
    for (rank, &(_, i)) in keyed.iter().enumerate() {
        v[i] = 0.3 * rank as f64 - 0.1 * n as f64;
    }
    Tensor::from_vec(v, shape).unwrap()
}

fn index(values: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape).unwrap()
}

fn gc(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    if let Err(e) = check(f, inputs) {
        panic!("{e}");
    }
}

/// A non-contiguous view of a fresh `[shape[1], shape[0], ...]` leaf is awkward to build inside a
/// gradient check, so tests transpose their (contiguous) leaves inside `f` instead.
fn transposed(x: &Tensor) -> Result<Tensor> {
    x.transpose(0, 1)
}

#[test]
fn unary_ops() {
    let x = randn(&[2, 3], 1);
    let pos = uniform(&[2, 3], 0.5, 2.0, 2);
    let kinked = away_from_zero(&[2, 3], 3);
    let cases: Vec<(&str, Unary, &Tensor)> = vec![
        ("neg", Unary::Neg, &x),
        ("exp", Unary::Exp, &x),
        ("log", Unary::Log, &pos),
        ("sqrt", Unary::Sqrt, &pos),
        ("abs", Unary::Abs, &kinked),
        ("relu", Unary::Relu, &kinked),
        ("leaky_relu", Unary::LeakyRelu { negative_slope: 0.1 }, &kinked),
        ("gelu", Unary::Gelu, &x),
        ("gelu_tanh", Unary::GeluTanh, &x),
        ("silu", Unary::Silu, &x),
        ("sigmoid", Unary::Sigmoid, &x),
        (
            "softplus",
            Unary::Softplus {
                beta: 1.0,
                threshold: 20.0,
            },
            &x,
        ),
        (
            "softplus beta 2",
            Unary::Softplus {
                beta: 2.0,
                threshold: 20.0,
            },
            &x,
        ),
        ("tanh", Unary::Tanh, &x),
        ("powf 2.5", Unary::Powf { exponent: 2.5 }, &pos),
        ("powf -1.5", Unary::Powf { exponent: -1.5 }, &pos),
        ("powf 3 of negatives", Unary::Powf { exponent: 3.0 }, &x),
        (
            "affine",
            Unary::Affine {
                scale: -1.5,
                shift: 0.25,
            },
            &x,
        ),
    ];
    for (name, op, input) in cases {
        check(|t| t[0].unary(op), std::slice::from_ref(input)).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The same op on a transposed (non-contiguous) view.
        check(|t| transposed(&t[0])?.unary(op), std::slice::from_ref(input))
            .unwrap_or_else(|e| panic!("{name} on a transposed view: {e}"));
    }
}

#[test]
fn unary_methods_and_clamp() {
    let x = randn(&[3, 4], 4);
    gc(|t| t[0].neg(), std::slice::from_ref(&x));
    gc(|t| t[0].exp(), std::slice::from_ref(&x));
    gc(|t| t[0].abs()?.add_scalar(1.0)?.log(), std::slice::from_ref(&x));
    gc(|t| t[0].exp()?.sqrt(), std::slice::from_ref(&x));
    gc(|t| t[0].gelu(), std::slice::from_ref(&x));
    gc(|t| t[0].gelu_tanh(), std::slice::from_ref(&x));
    gc(|t| t[0].silu(), std::slice::from_ref(&x));
    gc(|t| t[0].sigmoid(), std::slice::from_ref(&x));
    gc(|t| t[0].softplus(), std::slice::from_ref(&x));
    gc(|t| t[0].tanh(), std::slice::from_ref(&x));
    gc(|t| t[0].add_scalar(2.5), std::slice::from_ref(&x));
    gc(|t| t[0].mul_scalar(-3.0), std::slice::from_ref(&x));
    gc(|t| t[0].affine(0.5, -1.0), std::slice::from_ref(&x));
    gc(|t| t[0].leaky_relu(0.2), &[away_from_zero(&[3, 4], 5)]);
    gc(|t| t[0].relu(), &[away_from_zero(&[3, 4], 6)]);
    gc(|t| t[0].powf(2.0), std::slice::from_ref(&x));
    // Clamp: values inside, below and above the bounds, none near a bound.
    let c = Tensor::from_vec(vec![-2.0, -0.9, -0.3, 0.0, 0.4, 0.7, 0.9, 3.0], &[2, 4]).unwrap();
    gc(|t| t[0].clamp(-0.5, 0.5), std::slice::from_ref(&c));
    // Softplus above its threshold is the identity, with gradient 1.
    let big = Tensor::from_vec(vec![25.0, 30.0, -3.0, 1.0], &[4]).unwrap();
    gc(|t| t[0].softplus(), &[big]);
    // Narrowed view (non-contiguous, non-zero offset).
    gc(|t| t[0].narrow(1, 1, 2)?.tanh(), std::slice::from_ref(&x));
}

#[test]
fn binary_ops_same_shape_and_broadcast() {
    let shapes: [(&[usize], &[usize]); 6] = [
        (&[2, 3], &[2, 3]),
        (&[2, 3], &[3]),
        (&[2, 1, 4], &[3, 1]),
        (&[], &[2, 3]),
        (&[4, 1], &[1, 5]),
        (&[1, 3, 1], &[2, 1, 2]),
    ];
    for (i, (sa, sb)) in shapes.iter().enumerate() {
        let i = i as u64;
        let a = randn(sa, 10 + i);
        let b = randn(sb, 20 + i);
        let pos_a = uniform(sa, 0.5, 2.0, 30 + i);
        let nonzero_b = away_from_zero(sb, 40 + i);
        let ctx = |name: &str| format!("{name} {sa:?} {sb:?}");
        let run = |name: &str, f: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>, x: &Tensor, y: &Tensor| {
            check(|t| f(&t[0], &t[1]), &[x.clone(), y.clone()]).unwrap_or_else(|e| panic!("{}: {e}", ctx(name)));
        };
        run("add", &|x, y| x.add(y), &a, &b);
        run("sub", &|x, y| x.sub(y), &a, &b);
        run("mul", &|x, y| x.mul(y), &a, &b);
        run("div", &|x, y| x.div(y), &a, &nonzero_b);
        run("pow", &|x, y| x.pow(y), &pos_a, &b);
        // maximum/minimum: b shifted so that no pair ties (a in (-inf, inf), b in +-[0.2, inf) + 0.05
        // would still be able to tie, so compare against a distinct grid instead).
        let a_grid = distinct(sa, 50 + i);
        let b_grid = distinct(sb, 60 + i).add_scalar(0.15).unwrap();
        run("maximum", &|x, y| x.maximum(y), &a_grid, &b_grid);
        run("minimum", &|x, y| x.minimum(y), &a_grid, &b_grid);
    }
}

#[test]
fn binary_ops_on_views_and_reuse() {
    let a = randn(&[3, 4], 70);
    let b = randn(&[4, 3], 71);
    // Transposed right operand.
    gc(|t| t[0].mul(&t[1].t()?), &[a.clone(), b.clone()]);
    // Narrowed operands broadcast against each other.
    gc(
        |t| t[0].narrow(1, 1, 1)?.sub(&t[1].narrow(0, 2, 1)?),
        &[a.clone(), b.clone()],
    );
    // Permuted 3-D operand against a broadcast row.
    let c = randn(&[2, 3, 4], 72);
    let row = randn(&[2], 73);
    gc(|t| t[0].permute(&[2, 1, 0])?.mul(&t[1]), &[c.clone(), row]);
    // A tensor used twice (and three times): gradients accumulate.
    gc(|t| t[0].mul(&t[0]), std::slice::from_ref(&a));
    gc(|t| t[0].mul(&t[0].exp()?)?.add(&t[0]), std::slice::from_ref(&a));
    gc(|t| t[0].add(&t[0].t()?), &[randn(&[3, 3], 74)]);
    gc(
        |t| {
            let s = t[0].sigmoid()?;
            s.mul(&t[1])?.add(&s.mul(&s)?)?.sub(&t[1].tanh()?)
        },
        &[a.clone(), randn(&[4], 75)],
    );
    // sum_to_shape is the adjoint of broadcasting.
    gc(|t| t[0].sum_to_shape(&[3, 1]), &[randn(&[2, 3, 4], 76)]);
    gc(|t| t[0].sum_to_shape(&[4]), &[randn(&[2, 3, 4], 77)]);
    gc(|t| t[0].sum_to_shape(&[]), &[randn(&[2, 3], 78)]);
}

#[test]
fn where_and_masks() {
    let mask = Tensor::from_vec(vec![1u8, 0, 0, 1, 1, 0], &[2, 3]).unwrap();
    let a = randn(&[2, 3], 80);
    let b = randn(&[3], 81);
    gc(|t| mask.where_(&t[0], &t[1]), &[a.clone(), b.clone()]);
    // Mask broadcast along rows; a scalar on_false.
    let col = Tensor::from_vec(vec![1u8, 0], &[2, 1]).unwrap();
    gc(|t| col.where_(&t[0], &t[1]), &[a.clone(), randn(&[], 82)]);
    // Mask computed from the data (grid values, none at the 0.05 threshold), then used to pick.
    let x = distinct(&[2, 3], 83);
    gc(
        |t| {
            let m = t[0].gt(&Tensor::full(&[], 0.05, DType::F64))?;
            m.where_(&t[0].mul_scalar(2.0)?, &t[0].exp()?)
        },
        &[x],
    );
}

#[test]
fn reductions() {
    let x = randn(&[2, 3, 4], 90);
    let dims_sets: [&[isize]; 5] = [&[], &[0], &[1], &[0, 2], &[-1, 0]];
    for dims in dims_sets {
        for keepdim in [false, true] {
            let ctx = format!("dims {dims:?} keepdim {keepdim}");
            check(|t| t[0].sum(dims, keepdim), std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("sum {ctx}: {e}"));
            check(|t| t[0].mean(dims, keepdim), std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("mean {ctx}: {e}"));
            for correction in [0, 1] {
                check(|t| t[0].var(dims, correction, keepdim), std::slice::from_ref(&x))
                    .unwrap_or_else(|e| panic!("var({correction}) {ctx}: {e}"));
            }
            check(|t| t[0].logsumexp(dims, keepdim), std::slice::from_ref(&x))
                .unwrap_or_else(|e| panic!("logsumexp {ctx}: {e}"));
        }
    }
    gc(|t| t[0].sum_all(), std::slice::from_ref(&x));
    gc(|t| t[0].mean_all(), std::slice::from_ref(&x));
    // On a permuted view and a narrowed view.
    gc(
        |t| t[0].permute(&[2, 0, 1])?.var(&[1, 2], 1, false),
        std::slice::from_ref(&x),
    );
    gc(
        |t| t[0].narrow(2, 1, 2)?.logsumexp(&[2], true),
        std::slice::from_ref(&x),
    );
    gc(|t| t[0].transpose(0, 2)?.mean(&[0], false), std::slice::from_ref(&x));
    // A reduction of a tensor that is also used elementwise: var(x) * x.
    gc(
        |t| t[0].var(&[1], 0, true)?.mul(&t[0]),
        std::slice::from_ref(&randn(&[3, 4], 91)),
    );
    // logsumexp of large values stays finite and differentiable.
    gc(
        |t| t[0].add_scalar(500.0)?.logsumexp(&[1], false),
        &[randn(&[2, 3], 92)],
    );
}

#[test]
fn max_and_min_with_indices() {
    let x = distinct(&[3, 4, 2], 100);
    for dim in [0isize, 1, 2, -1] {
        for keepdim in [false, true] {
            check(|t| Ok(t[0].max_dim(dim, keepdim)?.0), std::slice::from_ref(&x))
                .unwrap_or_else(|e| panic!("max_dim({dim}, {keepdim}): {e}"));
            check(|t| Ok(t[0].min_dim(dim, keepdim)?.0), std::slice::from_ref(&x))
                .unwrap_or_else(|e| panic!("min_dim({dim}, {keepdim}): {e}"));
        }
    }
    // On a transposed view, and the max combined with the input (softmax-style shift).
    gc(
        |t| Ok(t[0].transpose(0, 2)?.max_dim(1, false)?.0),
        std::slice::from_ref(&x),
    );
    gc(
        |t| t[0].sub(&t[0].max_dim(1, true)?.0)?.exp(),
        std::slice::from_ref(&distinct(&[2, 5], 101)),
    );
    // A scalar's max is itself.
    gc(|t| Ok(t[0].max_dim(0, false)?.0), &[randn(&[], 102)]);
}

#[test]
fn softmax_and_log_softmax() {
    let x = randn(&[2, 3, 4], 110);
    for dim in [0isize, 1, 2, -1] {
        check(|t| t[0].softmax(dim), std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("softmax({dim}): {e}"));
        check(|t| t[0].log_softmax(dim), std::slice::from_ref(&x))
            .unwrap_or_else(|e| panic!("log_softmax({dim}): {e}"));
    }
    // Over the middle axis of a permuted view.
    gc(|t| t[0].permute(&[2, 0, 1])?.softmax(1), std::slice::from_ref(&x));
    gc(|t| t[0].permute(&[1, 2, 0])?.log_softmax(1), std::slice::from_ref(&x));
    // Composed with its input: x * softmax(x).
    gc(|t| t[0].mul(&t[0].softmax(-1)?), &[randn(&[3, 5], 111)]);
}

#[test]
fn matmul_all_rank_combinations() {
    let cases: [(&[usize], &[usize]); 12] = [
        (&[3], &[3]),
        (&[3], &[3, 4]),
        (&[2, 3], &[3]),
        (&[2, 3], &[3, 4]),
        (&[2, 2, 3], &[2, 3, 4]),
        (&[2, 1, 2, 3], &[3, 3, 2]),
        (&[2, 2, 3], &[3, 4]),
        (&[3, 2], &[2, 2, 3]),
        (&[3], &[2, 3, 4]),
        (&[2, 2, 3], &[3]),
        (&[1, 2, 3], &[4, 3, 2]),
        (&[1, 3], &[3, 1]),
    ];
    for (i, (sa, sb)) in cases.iter().enumerate() {
        let a = randn(sa, 120 + i as u64);
        let b = randn(sb, 140 + i as u64);
        check(|t| t[0].matmul(&t[1]), &[a, b]).unwrap_or_else(|e| panic!("matmul {sa:?} @ {sb:?}: {e}"));
    }
}

#[test]
fn matmul_views_and_reuse() {
    let a = randn(&[3, 2], 160);
    let b = randn(&[4, 3], 161);
    // Both operands transposed views.
    gc(|t| t[0].t()?.matmul(&t[1].t()?), &[a.clone(), b.clone()]);
    // Batched with transposed batch matrices and a permuted batch axis.
    let c = randn(&[3, 2, 4], 162);
    let d = randn(&[2, 5, 3], 163);
    gc(
        |t| t[0].permute(&[1, 2, 0])?.matmul(&t[1].transpose(1, 2)?),
        &[c.clone(), d.clone()],
    );
    // Narrowed (offset, strided) operands.
    gc(
        |t| t[0].narrow(1, 1, 3)?.matmul(&t[1].narrow(0, 1, 3)?),
        &[randn(&[2, 5], 164), randn(&[4, 3], 165)],
    );
    // Expanded (stride-0) operand.
    gc(
        |t| t[0].expand(&[2, 3, 4])?.matmul(&t[1]),
        &[randn(&[1, 3, 4], 166), randn(&[2, 4, 2], 167)],
    );
    // x^T x: one tensor on both sides.
    gc(|t| t[0].t()?.matmul(&t[0]), std::slice::from_ref(&b));
    gc(|t| t[0].matmul(&t[0]), &[randn(&[3, 3], 168)]);
}

#[test]
fn linear_with_and_without_bias() {
    let x = randn(&[4, 3], 170);
    let w = randn(&[2, 3], 171);
    let bias = randn(&[2], 172);
    gc(|t| t[0].linear(&t[1], None), &[x.clone(), w.clone()]);
    gc(
        |t| t[0].linear(&t[1], Some(&t[2])),
        &[x.clone(), w.clone(), bias.clone()],
    );
    gc(
        |t| t[0].linear(&t[1], Some(&t[2])),
        &[randn(&[2, 2, 3], 173), w.clone(), bias.clone()],
    );
    gc(|t| t[0].linear(&t[1], Some(&t[2])), &[randn(&[3], 174), w, bias]);
}

#[test]
fn cat_stack_split_chunk() {
    let a = randn(&[2, 1, 3], 180);
    let b = randn(&[2, 2, 3], 181);
    let c = randn(&[2, 3, 3], 182);
    gc(
        |t| Tensor::cat(&[&t[0], &t[1], &t[2]], 1),
        &[a.clone(), b.clone(), c.clone()],
    );
    gc(
        |t| Tensor::cat(&[&t[0].exp()?, &t[0], &t[1].permute(&[1, 0, 2])?], 0),
        &[randn(&[1, 2, 3], 183), randn(&[2, 1, 3], 184)],
    );
    gc(
        |t| Tensor::cat(&[&t[0], &t[1]], -1),
        &[randn(&[2, 2], 185), randn(&[2, 3], 186)],
    );
    let s = randn(&[2, 3], 187);
    for dim in [0isize, 1, 2, -1] {
        check(
            |t| Tensor::stack(&[&t[0], &t[1].sin_free()?, &t[0]], dim),
            &[s.clone(), s.clone()],
        )
        .unwrap_or_else(|e| panic!("stack({dim}): {e}"));
    }
    // Pieces transformed differently and joined again, so each piece's gradient is distinct.
    let x = randn(&[3, 7], 188);
    gc(
        |t| {
            let p = t[0].split(3, 1)?;
            assert_eq!(p.iter().map(|p| p.shape()[1]).collect::<Vec<_>>(), vec![3, 3, 1]);
            Tensor::cat(&[&p[2].exp()?, &p[0].mul_scalar(3.0)?, &p[1].tanh()?], 1)
        },
        std::slice::from_ref(&x),
    );
    gc(
        |t| {
            let p = t[0].split_sizes(&[1, 2], 0)?;
            p[1].mul(&p[0])
        },
        std::slice::from_ref(&x),
    );
    gc(
        |t| {
            let p = t[0].chunk(3, 1)?;
            assert_eq!(p.len(), 3);
            Tensor::cat(&[&p[1].sigmoid()?, &p[0], &p[2].mul(&p[2])?], 1)
        },
        std::slice::from_ref(&x),
    );
    // Only some pieces used: the rest get zero gradient.
    gc(|t| Ok(t[0].chunk(2, 0)?[1].clone()), std::slice::from_ref(&x));
}

/// Elementwise `x * (1 + x)`: a nonlinear, non-kinked map used where a plain identity would make a
/// gradient check trivially pass.
trait SinFree {
    fn sin_free(&self) -> Result<Tensor>;
}
impl SinFree for Tensor {
    fn sin_free(&self) -> Result<Tensor> {
        self.mul(&self.add_scalar(1.0)?)
    }
}

#[test]
fn pad_all_modes() {
    let x1 = randn(&[4], 190);
    let x3 = randn(&[2, 3, 4], 191);
    let modes = [
        PadMode::Constant,
        PadMode::Reflect,
        PadMode::Replicate,
        PadMode::Circular,
    ];
    for mode in modes {
        let ctx = format!("{mode:?}");
        check(|t| t[0].pad(&[2, 1], mode, 0.5), std::slice::from_ref(&x1)).unwrap_or_else(|e| panic!("{ctx} 1-D: {e}"));
        check(|t| t[0].pad(&[3, 2, 1, 2], mode, 0.0), std::slice::from_ref(&x3))
            .unwrap_or_else(|e| panic!("{ctx} 2 axes: {e}"));
        check(|t| t[0].pad(&[1, 0, 0, 1, 1, 1], mode, -1.0), std::slice::from_ref(&x3))
            .unwrap_or_else(|e| panic!("{ctx} 3 axes: {e}"));
        // On a permuted view, composed with a nonlinearity so reused border elements matter.
        check(
            |t| t[0].permute(&[0, 2, 1])?.pad(&[2, 2], mode, 0.0)?.sin_free(),
            std::slice::from_ref(&x3),
        )
        .unwrap_or_else(|e| panic!("{ctx} permuted: {e}"));
    }
    // Constant padding with negative amounts crops.
    gc(
        |t| t[0].pad(&[-1, 2, 1, -1], PadMode::Constant, 0.0),
        std::slice::from_ref(&x3),
    );
    // Circular by the full size.
    gc(|t| t[0].pad(&[4, 4], PadMode::Circular, 0.0), std::slice::from_ref(&x1));
}

#[test]
fn roll_shifts() {
    let x = randn(&[3, 4], 200);
    gc(|t| t[0].roll(&[1], &[0]), std::slice::from_ref(&x));
    gc(|t| t[0].roll(&[-1, 5], &[1, 0]), std::slice::from_ref(&x));
    gc(|t| t[0].roll(&[-7], &[]), std::slice::from_ref(&x));
    gc(|t| t[0].t()?.roll(&[2], &[-1])?.sin_free(), std::slice::from_ref(&x));
}

#[test]
fn gather_scatter_index_select() {
    let x = randn(&[3, 4], 210);
    let idx = index(&[0, 3, 3, 1, 2, 0], &[3, 2]);
    gc(|t| t[0].gather(1, &idx), std::slice::from_ref(&x));
    let idx0 = index(&[2, 0, 1, 2, 2, 2, 0, 1], &[2, 4]);
    gc(|t| t[0].gather(0, &idx0), std::slice::from_ref(&x));
    // Index smaller than the input off the gathered axis.
    let small = index(&[1, 1], &[1, 2]);
    gc(|t| t[0].gather(0, &small), std::slice::from_ref(&x));
    // Gather from a transposed view.
    let idx_t = index(&[0, 2, 1, 1, 2, 0, 0, 0], &[4, 2]);
    gc(|t| t[0].t()?.gather(1, &idx_t), std::slice::from_ref(&x));

    // scatter_add: gradient to self and to src, with repeated targets.
    let src = randn(&[2, 3], 211);
    let sidx = index(&[0, 1, 0, 3, 3, 2], &[2, 3]);
    gc(|t| t[0].scatter_add(1, &sidx, &t[1]), &[x.clone(), src.clone()]);
    let sidx0 = index(&[2, 2, 0, 2, 1, 0], &[2, 3]);
    gc(
        |t| t[0].scatter_add(0, &sidx0, &t[1])?.sin_free(),
        &[x.clone(), src.clone()],
    );

    // index_select with repeated and reordered indices, on several axes.
    let sel = index(&[2, 0, 2], &[3]);
    gc(|t| t[0].index_select(0, &sel), std::slice::from_ref(&x));
    gc(
        |t| t[0].index_select(1, &index(&[3, 3, 1], &[3])),
        std::slice::from_ref(&x),
    );
    let x3 = randn(&[2, 3, 2], 212);
    gc(|t| t[0].index_select(1, &sel)?.sin_free(), std::slice::from_ref(&x3));
    gc(
        |t| t[0].permute(&[2, 0, 1])?.index_select(2, &sel),
        std::slice::from_ref(&x3),
    );
}

#[test]
fn views() {
    let x = randn(&[2, 3, 4], 220);
    let one = std::slice::from_ref(&x);
    gc(|t| t[0].reshape(&[4, 6])?.sin_free(), one);
    gc(|t| t[0].view(&[-1, 4])?.sin_free(), one);
    gc(|t| t[0].flatten(1, 2)?.sin_free(), one);
    gc(|t| t[0].flatten(0, -1), one);
    gc(|t| t[0].permute(&[1, 2, 0])?.sin_free(), one);
    gc(|t| t[0].transpose(0, -1)?.sin_free(), one);
    gc(|t| t[0].narrow(1, 1, 2)?.sin_free(), one);
    gc(|t| t[0].narrow(2, 0, 4)?.narrow(0, 1, 1)?.sin_free(), one);
    gc(|t| t[0].unsqueeze(1)?.sin_free(), one);
    gc(|t| t[0].unsqueeze(-1)?.squeeze(-1)?.sin_free(), one);
    gc(|t| t[0].permute(&[2, 0, 1])?.contiguous()?.sin_free(), one);
    gc(|t| t[0].permute(&[2, 0, 1])?.reshape(&[8, 3])?.sin_free(), one);
    gc(|t| t[0].t()?.sin_free(), &[randn(&[3, 2], 221)]);
    gc(|t| t[0].squeeze(1)?.sin_free(), &[randn(&[2, 1, 3], 222)]);
    // Broadcasting views sum their gradient back.
    gc(|t| t[0].broadcast_to(&[2, 3, 4])?.sin_free(), &[randn(&[3, 1], 223)]);
    gc(|t| t[0].expand(&[2, -1, 4])?.sin_free(), &[randn(&[3, 1], 224)]);
    gc(|t| t[0].broadcast_to(&[2, 3])?.mul(&t[0]), &[randn(&[3], 225)]);
    // A chain of views ending in a reduction over a middle axis.
    gc(
        |t| {
            t[0].transpose(0, 1)?
                .narrow(2, 1, 3)?
                .reshape(&[3, 6])?
                .sum(&[1], false)
        },
        one,
    );
}

#[test]
fn dtype_conversion() {
    // f64 -> f32 -> f64 rounds to f32 precision, so use a larger step and looser tolerance.
    let opts = GradCheck {
        step: 1e-2,
        atol: 1e-3,
        rtol: 1e-3,
    };
    let x = randn(&[2, 3], 230);
    let f = |t: &[Tensor]| t[0].to_dtype(DType::F32)?.mul_scalar(3.0)?.to_dtype(DType::F64);
    check_with(f, std::slice::from_ref(&x), opts).unwrap();
    // The gradient that reaches an f64 leaf through an f32 computation is f64 and exact here.
    let leaf = x.requires_grad();
    let y = leaf
        .to_dtype(DType::F32)
        .unwrap()
        .mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap();
    let g = y.backward().unwrap();
    let gx = g.get(&leaf).unwrap();
    assert_eq!(gx.dtype(), DType::F64);
    assert_eq!(gx.to_vec::<f64>().unwrap(), vec![3.0; 6]);
    // And the other way: an f32 leaf through an f64 computation gets an f32 gradient.
    let leaf32 = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap().requires_grad();
    let y = leaf32
        .to_dtype(DType::F64)
        .unwrap()
        .powf(2.0)
        .unwrap()
        .sum_all()
        .unwrap();
    let g = y.backward().unwrap();
    let gx = g.get(&leaf32).unwrap();
    assert_eq!(gx.dtype(), DType::F32);
    assert_eq!(gx.to_vec::<f32>().unwrap(), vec![2.0, 4.0]);
}

#[test]
fn gradient_check_catches_a_wrong_gradient() {
    // A self-test of the checker: a detached factor hides part of the derivative of x * x.
    let x = randn(&[3], 240);
    assert!(check(|t| t[0].mul(&t[0].detach()), &[x]).is_err());
}

#[test]
fn flip_gradient() {
    let x = Tensor::randn(&[2, 3, 4], 41, DType::F64).unwrap();
    check(|t| t[0].flip(&[0, 2]), &[x]).unwrap();
}
