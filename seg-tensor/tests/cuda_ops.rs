//! CUDA ops against the CPU ops on random inputs (f32), views included, and gradients through a
//! composed graph. Each GPU test first opens `Device::cuda(0)`; where that fails (no driver, no
//! device, no libnvrtc) it prints `skipped: <reason>` and passes. The tests at the end need no GPU.

use std::sync::{Mutex, MutexGuard};

use seg_tensor::{
    AvgPoolOptions, ConvOptions, ConvPadding, ConvTransposeOptions, DType, Device, Error, InterpolateMode,
    InterpolateOptions, MaxPoolOptions, PadMode, Result, Tensor,
};

/// CUDA device 0 and a lock that runs the GPU tests one at a time (the memory counts are per
/// device), or `None` after printing why the test is skipped.
fn gpu() -> Option<(Device, MutexGuard<'static, ()>)> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    match Device::cuda(0) {
        Ok(device) => Some((device, ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner()))),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, seed, DType::F32).unwrap()
}

/// Fails unless `gpu` (moved back) and `cpu` have one shape and dtype and agree within `tol`
/// relative to the largest magnitude (NaN must match NaN).
fn assert_close(what: &str, gpu: &Tensor, cpu: &Tensor, tol: f64) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shape");
    assert_eq!(gpu.dtype(), cpu.dtype(), "{what}: dtype");
    assert!(
        matches!(gpu.device(), Device::Cuda(_)),
        "{what}: the result left the GPU"
    );
    let (g, c) = (gpu.to_vec_f64(), cpu.to_vec_f64());
    let scale = c
        .iter()
        .fold(1.0f64, |m, x| if x.is_finite() { m.max(x.abs()) } else { m });
    for (i, (a, b)) in g.iter().zip(&c).enumerate() {
        let same = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol * scale;
        assert!(same, "{what}: element {i}: cuda {a} vs cpu {b}");
    }
}

/// `f` on CPU tensors and on their copies on `device`, compared.
fn check(what: &str, device: Device, inputs: &[Tensor], tol: f64, f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let cpu = f(inputs).unwrap();
    let moved: Vec<Tensor> = inputs.iter().map(|t| t.to_device(device).unwrap()).collect();
    let gpu = f(&moved).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_close(what, &gpu, &cpu, tol);
}

#[test]
fn to_device_round_trips_every_dtype() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let x = randn(&[3, 5, 4], 1).mul_scalar(50.0).unwrap();
    for dtype in [DType::F16, DType::BF16, DType::F32, DType::F64, DType::I64, DType::U8] {
        let t = x.to_dtype(dtype).unwrap();
        let back = t.to_device(dev).unwrap().to_device(Device::Cpu).unwrap();
        assert_eq!(back.to_vec_f64(), t.to_vec_f64(), "{dtype:?}");
        // A view (permuted and narrowed) moved, read back and made dense on the device.
        let view = t.permute(&[2, 0, 1]).unwrap().narrow(1, 1, 2).unwrap();
        let on = t
            .to_device(dev)
            .unwrap()
            .permute(&[2, 0, 1])
            .unwrap()
            .narrow(1, 1, 2)
            .unwrap();
        assert_eq!(on.to_vec_f64(), view.to_vec_f64(), "{dtype:?} view");
        assert_eq!(
            on.contiguous().unwrap().to_vec_f64(),
            view.to_vec_f64(),
            "{dtype:?} contiguous"
        );
    }
}

#[test]
fn casts_match_the_cpu() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let x = randn(&[7, 9], 2)
        .mul_scalar(300.0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let dtypes = [DType::F16, DType::BF16, DType::F32, DType::F64, DType::I64, DType::U8];
    for from in dtypes {
        let src = x.to_dtype(from).unwrap();
        for to in dtypes {
            let cpu = src.to_dtype(to).unwrap();
            let gpu = src.to_device(dev).unwrap().t().unwrap().to_dtype(to).unwrap();
            assert_eq!(gpu.to_vec_f64(), cpu.t().unwrap().to_vec_f64(), "{from:?} -> {to:?}");
        }
    }
}

#[test]
fn full_and_zeros_on_the_device() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    for dtype in [DType::F16, DType::BF16, DType::F32, DType::F64, DType::I64, DType::U8] {
        let t = Tensor::full_on(&[4, 3], 2.5, dtype, dev).unwrap();
        assert_eq!(t.device(), dev);
        assert_eq!(t.to_vec_f64(), Tensor::full(&[4, 3], 2.5, dtype).to_vec_f64());
    }
}

#[test]
fn unary_ops_match_the_cpu() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let x = randn(&[4, 6, 5], 3);
    let positive = x.abs().unwrap().add_scalar(0.1).unwrap();
    type Op = fn(&Tensor) -> Result<Tensor>;
    let ops: [(&str, Op); 16] = [
        ("neg", Tensor::neg),
        ("exp", Tensor::exp),
        ("abs", Tensor::abs),
        ("relu", Tensor::relu),
        ("gelu", Tensor::gelu),
        ("gelu_tanh", Tensor::gelu_tanh),
        ("silu", Tensor::silu),
        ("sigmoid", Tensor::sigmoid),
        ("softplus", Tensor::softplus),
        ("tanh", Tensor::tanh),
        ("leaky_relu", |t| t.leaky_relu(0.1)),
        ("clamp", |t| t.clamp(-0.5, 0.7)),
        ("affine", |t| t.affine(1.5, -2.0)),
        ("log", |t| t.abs()?.add_scalar(0.1)?.log()),
        ("sqrt", |t| t.abs()?.sqrt()),
        ("powf", |t| t.abs()?.powf(1.7)),
    ];
    for (name, op) in ops {
        // On a permuted view too: kernels read through strides.
        check(name, dev, std::slice::from_ref(&x), 1e-5, |t| op(&t[0]));
        check(name, dev, std::slice::from_ref(&x), 1e-5, |t| {
            op(&t[0].permute(&[2, 0, 1])?)
        });
        // The derivative, through backward.
        let grad_of = |t: &Tensor| -> Result<Tensor> {
            let leaf = t.requires_grad();
            let g = op(&leaf)?.mul(&leaf)?.sum_all()?.backward()?;
            Ok(g.get(&leaf).unwrap().clone())
        };
        check(
            &format!("{name} backward"),
            dev,
            std::slice::from_ref(&positive),
            1e-4,
            |t| grad_of(&t[0]),
        );
    }
}

#[test]
fn binary_ops_broadcast_and_differentiate() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let a = randn(&[3, 1, 5], 4);
    let b = randn(&[4, 1], 5).abs().unwrap().add_scalar(0.5).unwrap();
    type Op = fn(&Tensor, &Tensor) -> Result<Tensor>;
    let ops: [(&str, Op); 7] = [
        ("add", Tensor::add),
        ("sub", Tensor::sub),
        ("mul", Tensor::mul),
        ("div", Tensor::div),
        ("maximum", Tensor::maximum),
        ("minimum", Tensor::minimum),
        ("pow", |a, b| a.abs()?.pow(b)),
    ];
    for (name, op) in ops {
        check(name, dev, &[a.clone(), b.clone()], 1e-5, |t| op(&t[0], &t[1]));
        for side in 0..2 {
            let grad_of = |t: &[Tensor]| -> Result<Tensor> {
                let (x, y) = (t[0].requires_grad(), t[1].requires_grad());
                let g = op(&x, &y)?.sum_all()?.backward()?;
                Ok(g.get(if side == 0 { &x } else { &y }).unwrap().clone())
            };
            check(&format!("{name} d{side}"), dev, &[a.clone(), b.clone()], 1e-4, grad_of);
        }
    }
}

#[test]
fn comparisons_and_where_match_the_cpu() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let a = randn(&[5, 6], 6).round_to(1);
    let b = randn(&[6], 7).round_to(1);
    type Op = fn(&Tensor, &Tensor) -> Result<Tensor>;
    let ops: [(&str, Op); 6] = [
        ("eq", Tensor::eq),
        ("ne", Tensor::ne),
        ("lt", Tensor::lt),
        ("le", Tensor::le),
        ("gt", Tensor::gt),
        ("ge", Tensor::ge),
    ];
    for (name, op) in ops {
        check(name, dev, &[a.clone(), b.clone()], 0.0, |t| op(&t[0], &t[1]));
    }
    check("where", dev, &[a.clone(), b.clone()], 0.0, |t| {
        t[0].gt(&t[1])?.where_(&t[0], &t[1])
    });
}

trait RoundTo {
    fn round_to(&self, decimals: i32) -> Tensor;
}

impl RoundTo for Tensor {
    /// Values rounded to `decimals` places, so that comparisons meet ties.
    fn round_to(&self, decimals: i32) -> Tensor {
        let scale = 10f64.powi(decimals);
        let v: Vec<f32> = self
            .to_vec_f64()
            .iter()
            .map(|x| ((x * scale).round() / scale) as f32)
            .collect();
        Tensor::from_vec(v, self.shape()).unwrap()
    }
}

#[test]
fn reductions_match_the_cpu() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let x = randn(&[3, 4, 300], 8);
    for dims in [vec![], vec![0], vec![2], vec![0, 2], vec![1, 2]] {
        for keepdim in [false, true] {
            let d = format!("{dims:?} keepdim={keepdim}");
            check(&format!("sum {d}"), dev, std::slice::from_ref(&x), 1e-5, |t| {
                t[0].sum(&dims, keepdim)
            });
            check(&format!("mean {d}"), dev, std::slice::from_ref(&x), 1e-5, |t| {
                t[0].mean(&dims, keepdim)
            });
            check(&format!("var {d}"), dev, std::slice::from_ref(&x), 1e-5, |t| {
                t[0].var(&dims, 1, keepdim)
            });
            check(&format!("logsumexp {d}"), dev, std::slice::from_ref(&x), 1e-5, |t| {
                t[0].logsumexp(&dims, keepdim)
            });
        }
    }
    for dim in [0, 1, 2, -1] {
        check("max", dev, std::slice::from_ref(&x), 0.0, |t| {
            Ok(t[0].max_dim(dim, false)?.0)
        });
        check("min", dev, std::slice::from_ref(&x), 0.0, |t| {
            Ok(t[0].min_dim(dim, true)?.0)
        });
        check("argmax", dev, std::slice::from_ref(&x), 0.0, |t| {
            t[0].argmax(dim, false)
        });
        check("argmin", dev, std::slice::from_ref(&x), 0.0, |t| {
            t[0].argmin(dim, false)
        });
    }
    // Ties go to the first index; integer dtypes too.
    let ints = randn(&[6, 50], 9)
        .mul_scalar(2.0)
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap();
    check("argmax i64", dev, std::slice::from_ref(&ints), 0.0, |t| {
        t[0].argmax(1, false)
    });
    check("max i64", dev, &[ints], 0.0, |t| Ok(t[0].max_dim(0, false)?.0));
    // Through a transposed view.
    check("sum of a view", dev, std::slice::from_ref(&x), 1e-5, |t| {
        t[0].permute(&[2, 0, 1])?.sum(&[1], false)
    });
}

#[test]
fn softmax_and_log_softmax_with_gradients() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let x = randn(&[2, 7, 3, 5], 10).mul_scalar(3.0).unwrap();
    let w = randn(&[2, 7, 3, 5], 11);
    for dim in [0, 1, 3] {
        check("softmax", dev, std::slice::from_ref(&x), 1e-5, |t| t[0].softmax(dim));
        check("log_softmax", dev, std::slice::from_ref(&x), 1e-5, |t| {
            t[0].log_softmax(dim)
        });
        for log in [false, true] {
            let grad_of = |t: &[Tensor]| -> Result<Tensor> {
                let leaf = t[0].requires_grad();
                let y = if log {
                    leaf.log_softmax(dim)?
                } else {
                    leaf.softmax(dim)?
                };
                let g = y.mul(&t[1])?.sum_all()?.backward()?;
                Ok(g.get(&leaf).unwrap().clone())
            };
            check(
                &format!("softmax backward log={log}"),
                dev,
                &[x.clone(), w.clone()],
                1e-4,
                grad_of,
            );
        }
    }
}

#[test]
fn matmul_batched_broadcast_and_transposed() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let a = randn(&[2, 3, 5, 7], 12);
    let b = randn(&[3, 7, 4], 13);
    check("matmul", dev, &[a.clone(), b.clone()], 1e-5, |t| t[0].matmul(&t[1]));
    check(
        "matmul 2d",
        dev,
        &[randn(&[9, 7], 14), randn(&[7, 11], 15)],
        1e-5,
        |t| t[0].matmul(&t[1]),
    );
    check(
        "matmul transposed",
        dev,
        &[randn(&[7, 9], 16), randn(&[11, 7], 17)],
        1e-5,
        |t| t[0].t()?.matmul(&t[1].t()?),
    );
    check(
        "matmul vector",
        dev,
        &[randn(&[5, 7], 18), randn(&[7], 19)],
        1e-5,
        |t| t[0].matmul(&t[1]),
    );
    check(
        "linear",
        dev,
        &[randn(&[4, 6, 7], 20), randn(&[3, 7], 21), randn(&[3], 22)],
        1e-5,
        |t| t[0].linear(&t[1], Some(&t[2])),
    );
}

#[test]
fn convolutions_and_transposed_convolutions_match_the_cpu_with_gradients() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let opts = |stride: usize, padding: usize, dilation: usize, groups: usize| ConvOptions {
        stride: vec![stride],
        padding: ConvPadding::Explicit(vec![padding]),
        dilation: vec![dilation],
        groups,
    };
    let cases = [
        ("conv3d 3x3x3", [2, 4, 7, 6, 5], [6, 4, 3, 3, 3], opts(1, 1, 1, 1)),
        (
            "conv3d stride 2, groups 2",
            [1, 4, 9, 8, 7],
            [6, 2, 3, 3, 3],
            opts(2, 1, 1, 2),
        ),
        (
            "conv3d dilated, unpadded",
            [1, 3, 9, 9, 9],
            [5, 3, 3, 3, 3],
            opts(1, 0, 2, 1),
        ),
        ("conv3d 1x1x1", [2, 5, 4, 4, 4], [7, 5, 1, 1, 1], opts(1, 0, 1, 1)),
    ];
    for (seed, (what, x, w, o)) in cases.into_iter().enumerate() {
        let seed = 100 + 3 * seed as u64;
        let inputs = [randn(&x, seed), randn(&w, seed + 1), randn(&w[..1], seed + 2)];
        check(what, dev, &inputs, 1e-4, |t| t[0].conv(&t[1], Some(&t[2]), &o));
        // The gradient in input `i`, from `sum(conv * tanh(conv))` (a non-constant upstream gradient).
        for (i, name) in ["input", "weight", "bias"].into_iter().enumerate() {
            let grad_of = |t: &[Tensor]| -> Result<Tensor> {
                let leaves: Vec<Tensor> = t.iter().map(Tensor::requires_grad).collect();
                let y = leaves[0].conv(&leaves[1], Some(&leaves[2]), &o)?;
                let g = y.mul(&y.tanh()?)?.sum_all()?.backward()?;
                Ok(g.get(&leaves[i]).unwrap().clone())
            };
            check(&format!("{what}: {name} gradient"), dev, &inputs, 1e-3, grad_of);
        }
    }
    let up = ConvTransposeOptions {
        stride: vec![2],
        padding: vec![1],
        output_padding: vec![1],
        dilation: vec![1],
        groups: 2,
    };
    let inputs = [
        randn(&[2, 4, 3, 4, 5], 120),
        randn(&[4, 3, 3, 3, 3], 121),
        randn(&[6], 122),
    ];
    check("conv_transpose3d", dev, &inputs, 1e-4, |t| {
        t[0].conv_transpose(&t[1], Some(&t[2]), &up)
    });
    for (i, name) in ["input", "weight", "bias"].into_iter().enumerate() {
        let grad_of = |t: &[Tensor]| -> Result<Tensor> {
            let leaves: Vec<Tensor> = t.iter().map(Tensor::requires_grad).collect();
            let y = leaves[0].conv_transpose(&leaves[1], Some(&leaves[2]), &up)?;
            let g = y.mul(&y.tanh()?)?.sum_all()?.backward()?;
            Ok(g.get(&leaves[i]).unwrap().clone())
        };
        check(
            &format!("conv_transpose3d: {name} gradient"),
            dev,
            &inputs,
            1e-3,
            grad_of,
        );
    }
    let same = ConvOptions {
        padding: ConvPadding::Same,
        ..ConvOptions::default()
    };
    check(
        "conv2d padding same, even kernel",
        dev,
        &[randn(&[2, 3, 8, 7], 130), randn(&[4, 3, 2, 4], 131)],
        1e-4,
        |t| t[0].conv(&t[1], None, &same),
    );
}

#[test]
fn norms_forward_and_backward() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let x = randn(&[2, 6, 4, 5], 23)
        .mul_scalar(2.0)
        .unwrap()
        .add_scalar(1.0)
        .unwrap();
    let (w, b) = (randn(&[6], 24), randn(&[6], 25));
    let up = randn(&[2, 6, 4, 5], 26);
    type Norm = fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>;
    let norms: [(&str, Norm); 4] = [
        ("instance_norm", |x, w, b| x.instance_norm(Some(w), Some(b), 1e-5)),
        ("group_norm", |x, w, b| x.group_norm(3, Some(w), Some(b), 1e-5)),
        ("layer_norm", |x, _, _| x.layer_norm(&[4, 5], None, None, 1e-5)),
        ("batch_norm", |x, w, b| {
            x.batch_norm(None, Some(w), Some(b), true, None, 1e-5)
        }),
    ];
    for (name, norm) in norms {
        let inputs = [x.clone(), w.clone(), b.clone(), up.clone()];
        check(name, dev, &inputs, 1e-4, |t| norm(&t[0], &t[1], &t[2]));
        for which in 0..3 {
            let grad_of = |t: &[Tensor]| -> Result<Tensor> {
                let leaves: Vec<Tensor> = t[..3].iter().map(Tensor::requires_grad).collect();
                let g = norm(&leaves[0], &leaves[1], &leaves[2])?
                    .mul(&t[3])?
                    .sum_all()?
                    .backward()?;
                Ok(g.get(&leaves[which])
                    .cloned()
                    .unwrap_or_else(|| leaves[which].zeros_like()))
            };
            if name == "layer_norm" && which > 0 {
                continue;
            }
            check(&format!("{name} grad {which}"), dev, &inputs, 1e-4, grad_of);
        }
    }
}

#[test]
fn layer_norm_affine_and_batch_norm_running_statistics() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let inputs = [randn(&[3, 4, 7], 40), randn(&[7], 41), randn(&[7], 42)];
    for which in 0..3 {
        check(&format!("layer_norm affine grad {which}"), dev, &inputs, 1e-4, |t| {
            let leaves: Vec<Tensor> = t.iter().map(Tensor::requires_grad).collect();
            let y = leaves[0].layer_norm(&[7], Some(&leaves[1]), Some(&leaves[2]), 1e-5)?;
            let g = y.mul(&y)?.sum_all()?.backward()?;
            Ok(g.get(&leaves[which]).cloned().unwrap())
        });
    }
    // Training updates the running statistics as the CPU does; eval then normalises with them.
    let x = randn(&[4, 3, 5], 43).add_scalar(2.0).unwrap();
    let run = |x: &Tensor, device: Device| -> (Tensor, Tensor, Tensor) {
        let mut stats = seg_tensor::BatchNormStats::new(3, DType::F32);
        stats.running_mean = stats.running_mean.to_device(device).unwrap();
        stats.running_var = stats.running_var.to_device(device).unwrap();
        x.batch_norm(Some(&mut stats), None, None, true, Some(0.1), 1e-5)
            .unwrap();
        let eval = x.batch_norm(Some(&mut stats), None, None, false, None, 1e-5).unwrap();
        (eval, stats.running_mean, stats.running_var)
    };
    let (cpu, on) = (run(&x, Device::Cpu), run(&x.to_device(dev).unwrap(), dev));
    assert_close("batch_norm eval", &on.0, &cpu.0, 1e-5);
    assert_close("running_mean", &on.1, &cpu.1, 1e-6);
    assert_close("running_var", &on.2, &cpu.2, 1e-6);
}

#[test]
fn cat_pad_and_narrow_with_gradients() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let (a, b) = (randn(&[2, 3, 4], 27), randn(&[2, 5, 4], 28));
    check("cat", dev, &[a.clone(), b.clone()], 0.0, |t| {
        Tensor::cat(&[&t[0], &t[1]], 1)
    });
    check("pad", dev, std::slice::from_ref(&a), 0.0, |t| {
        t[0].pad(&[1, 2, -1, 3], PadMode::Constant, 0.5)
    });
    let up = randn(&[2, 8, 4], 29);
    let grad_of = |t: &[Tensor]| -> Result<Tensor> {
        let (x, y) = (t[0].requires_grad(), t[1].requires_grad());
        let joined = Tensor::cat(&[&x.narrow(2, 1, 2)?.pad(&[1, 1], PadMode::Constant, 0.0)?, &y], 1)?;
        let g = joined.mul(&t[2])?.sum_all()?.backward()?;
        g.get(&x).unwrap().add(&g.get(&y).unwrap().narrow(1, 0, 3)?)
    };
    check("cat/pad/narrow backward", dev, &[a, b, up], 1e-6, grad_of);
}

#[test]
fn gather_scatter_add_and_max_backward() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let x = randn(&[4, 6, 5], 40);
    let idx: Vec<i64> = (0..4 * 3 * 5).map(|i| (i * 7 % 6) as i64).collect();
    let index = Tensor::from_vec(idx, &[4, 3, 5]).unwrap();
    let src = randn(&[4, 3, 5], 41);
    check("gather", dev, &[x.clone(), index.clone()], 0.0, |t| {
        t[0].gather(1, &t[1])
    });
    check("gather of a view", dev, &[x.clone(), index.clone()], 0.0, |t| {
        t[0].permute(&[0, 2, 1])?
            .contiguous()?
            .permute(&[0, 2, 1])?
            .gather(1, &t[1])
    });
    check(
        "scatter_add",
        dev,
        &[x.clone(), index.clone(), src.clone()],
        1e-6,
        |t| t[0].scatter_add(1, &t[1], &t[2]),
    );
    let grad_of = |t: &[Tensor]| -> Result<Tensor> {
        let leaf = t[0].requires_grad();
        let picked = leaf.gather(1, &t[1])?.mul(&t[2])?.sum_all()?;
        let g = picked.add(&leaf.max_dim(2, false)?.0.sum_all()?)?.backward()?;
        Ok(g.get(&leaf).unwrap().clone())
    };
    check(
        "gather and max backward",
        dev,
        &[x.clone(), index.clone(), src],
        1e-6,
        grad_of,
    );
    let bad = Tensor::from_vec(vec![0i64, 6], &[1, 2, 1])
        .unwrap()
        .to_device(dev)
        .unwrap();
    let err = x.to_device(dev).unwrap().gather(1, &bad).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

/// `f` and the gradient of `sum(f(x) * up)` in `x`, on the CPU and on `device`, compared in f32 and
/// f64 (`up` drawn for `f`'s output shape).
fn check_with_gradient(what: &str, device: Device, x: &Tensor, tol: f64, f: impl Fn(&Tensor) -> Result<Tensor>) {
    for dtype in [DType::F32, DType::F64] {
        let x = x.to_dtype(dtype).unwrap();
        let up = randn(f(&x).unwrap().shape(), 99).to_dtype(dtype).unwrap();
        check(
            &format!("{what} ({dtype:?})"),
            device,
            std::slice::from_ref(&x),
            tol,
            |t| f(&t[0]),
        );
        let grad_of = |t: &[Tensor]| -> Result<Tensor> {
            let leaf = t[0].requires_grad();
            let g = f(&leaf)?.mul(&t[1])?.sum_all()?.backward()?;
            Ok(g.get(&leaf).unwrap().clone())
        };
        check(&format!("{what} backward ({dtype:?})"), device, &[x, up], tol, grad_of);
    }
}

#[test]
fn pooling_matches_the_cpu_with_gradients() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let max = |k: &[usize], s: &[usize], p: &[usize], d: &[usize], ceil_mode: bool| MaxPoolOptions {
        stride: Some(s.to_vec()),
        padding: p.to_vec(),
        dilation: d.to_vec(),
        ceil_mode,
        ..MaxPoolOptions::new(k)
    };
    let max_cases = [
        ("max_pool3d 2", vec![2, 3, 6, 7, 5], max(&[2], &[2], &[0], &[1], false)),
        (
            "max_pool3d overlapping, ceil",
            vec![1, 2, 7, 6, 9],
            max(&[3, 2, 3], &[2, 1, 2], &[1], &[1], true),
        ),
        (
            "max_pool3d dilated",
            vec![1, 2, 9, 8, 7],
            max(&[3, 2, 2], &[2, 1, 3], &[1], &[2, 1, 3], true),
        ),
        (
            "max_pool2d 3 stride 1",
            vec![2, 3, 9, 7],
            max(&[3], &[1], &[1], &[1], false),
        ),
        (
            "max_pool2d dilated ceil",
            vec![1, 4, 10, 11],
            max(&[3, 2], &[2, 3], &[1, 0], &[2, 3], true),
        ),
    ];
    for (seed, (what, shape, opts)) in max_cases.iter().enumerate() {
        let rank = shape.len() - 2;
        // Ties (rounded values) exercise the first-maximum rule.
        let values = randn(shape, 50 + seed as u64).to_vec::<f32>().unwrap();
        let x = Tensor::from_vec(values.iter().map(|v| (v * 2.0).round()).collect(), shape).unwrap();
        check_with_gradient(what, dev, &x, 1e-6, |t| {
            t.max_pool_with_indices(rank, opts).map(|r| r.0)
        });
        let (_, cpu) = x.max_pool_with_indices(rank, opts).unwrap();
        let (_, gpu) = x.to_device(dev).unwrap().max_pool_with_indices(rank, opts).unwrap();
        assert_eq!(
            gpu.to_vec::<i64>().unwrap(),
            cpu.to_vec::<i64>().unwrap(),
            "{what}: indices"
        );
    }
    let avg = |k: &[usize], s: &[usize], p: &[usize], ceil_mode: bool, count_include_pad: bool, div: Option<usize>| {
        AvgPoolOptions {
            stride: Some(s.to_vec()),
            padding: p.to_vec(),
            ceil_mode,
            count_include_pad,
            divisor_override: div,
            ..AvgPoolOptions::new(k)
        }
    };
    let avg_cases = [
        (
            "avg_pool3d 2",
            vec![2, 3, 6, 7, 5],
            avg(&[2], &[2], &[0], false, true, None),
        ),
        (
            "avg_pool3d padded, ceil",
            vec![1, 2, 7, 6, 9],
            avg(&[3, 2, 3], &[2, 1, 2], &[1], true, true, None),
        ),
        (
            "avg_pool3d without padding counted",
            vec![1, 2, 7, 6, 9],
            avg(&[3, 2, 3], &[2, 1, 2], &[1], true, false, None),
        ),
        (
            "avg_pool2d divisor override",
            vec![2, 3, 9, 7],
            avg(&[3], &[2], &[1], false, true, Some(5)),
        ),
        (
            "avg_pool2d ceil",
            vec![1, 4, 10, 11],
            avg(&[3, 2], &[2, 3], &[1, 0], true, false, None),
        ),
    ];
    for (seed, (what, shape, opts)) in avg_cases.iter().enumerate() {
        let rank = shape.len() - 2;
        check_with_gradient(what, dev, &randn(shape, 60 + seed as u64), 1e-6, |t| {
            t.avg_pool(rank, opts)
        });
    }
    let adaptive_cases = [
        ("adaptive_avg_pool3d shrink", vec![2, 3, 7, 6, 9], vec![3, 2, 4]),
        ("adaptive_avg_pool3d grow", vec![1, 2, 3, 4, 2], vec![5, 6, 3]),
        ("adaptive_avg_pool2d to 1", vec![2, 3, 9, 7], vec![1]),
        ("adaptive_avg_pool2d", vec![1, 4, 10, 11], vec![4, 3]),
    ];
    for (seed, (what, shape, out)) in adaptive_cases.iter().enumerate() {
        let rank = shape.len() - 2;
        check_with_gradient(what, dev, &randn(shape, 70 + seed as u64), 1e-6, |t| {
            t.adaptive_avg_pool(rank, out)
        });
    }
    // A dense tensor at the start of a longer buffer (a leading narrow) reads only its own values.
    check(
        "max_pool3d of a leading narrow",
        dev,
        &[randn(&[3, 2, 4, 4, 4], 75)],
        0.0,
        |t| t[0].narrow(0, 0, 1)?.max_pool3d(&MaxPoolOptions::new(&[2])),
    );
}

#[test]
fn interpolation_matches_the_cpu_with_gradients() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let corners = |opts: InterpolateOptions, align_corners: bool| InterpolateOptions {
        align_corners: Some(align_corners),
        ..opts
    };
    let cases = [
        (
            "nearest 3d x2",
            vec![2, 3, 4, 5, 3],
            InterpolateOptions::scale(&[2.0], InterpolateMode::Nearest),
        ),
        (
            "nearest 3d to sizes",
            vec![1, 2, 5, 4, 6],
            InterpolateOptions::size(&[7, 3, 6], InterpolateMode::Nearest),
        ),
        (
            "nearest 2d x1.5, 0.7",
            vec![2, 2, 6, 9],
            InterpolateOptions::scale(&[1.5, 0.7], InterpolateMode::Nearest),
        ),
        (
            "linear 1d",
            vec![2, 3, 7],
            InterpolateOptions::scale(&[1.7], InterpolateMode::Linear),
        ),
        (
            "bilinear to sizes",
            vec![2, 2, 5, 4],
            InterpolateOptions::size(&[8, 9], InterpolateMode::Bilinear),
        ),
        (
            "bilinear x2 aligned",
            vec![1, 3, 4, 6],
            corners(InterpolateOptions::scale(&[2.0], InterpolateMode::Bilinear), true),
        ),
        (
            "trilinear x2",
            vec![1, 2, 3, 4, 5],
            InterpolateOptions::scale(&[2.0], InterpolateMode::Trilinear),
        ),
        (
            "trilinear mixed",
            vec![2, 2, 5, 4, 6],
            InterpolateOptions::scale(&[2.0, 1.5, 0.6], InterpolateMode::Trilinear),
        ),
        (
            "trilinear aligned, sizes",
            vec![1, 2, 4, 5, 3],
            corners(InterpolateOptions::size(&[7, 5, 1], InterpolateMode::Trilinear), true),
        ),
        (
            "trilinear recomputed scale",
            vec![1, 2, 3, 5, 4],
            InterpolateOptions {
                recompute_scale_factor: Some(true),
                ..InterpolateOptions::scale(&[1.7], InterpolateMode::Trilinear)
            },
        ),
    ];
    for (seed, (what, shape, opts)) in cases.iter().enumerate() {
        check_with_gradient(what, dev, &randn(shape, 80 + seed as u64), 1e-6, |t| {
            t.interpolate(opts)
        });
    }
}

#[test]
fn pad_modes_roll_and_flip_with_gradients() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let x = randn(&[2, 3, 5, 4, 6], 90);
    for mode in [PadMode::Reflect, PadMode::Replicate, PadMode::Circular] {
        check_with_gradient(&format!("pad {mode:?} 3d"), dev, &x, 1e-6, |t| {
            t.pad(&[1, 2, 3, 0, 2, 4], mode, 0.0)
        });
        check_with_gradient(&format!("pad {mode:?} 1d"), dev, &x, 1e-6, |t| {
            t.pad(&[3, 2], mode, 0.0)
        });
    }
    check_with_gradient("roll", dev, &x, 1e-6, |t| t.roll(&[2, -3], &[2, 4]));
    check_with_gradient("flip", dev, &x, 1e-6, |t| t.flip(&[1, 3]));
    // Through a view, and an integer tensor (forward only).
    check("pad reflect of a view", dev, std::slice::from_ref(&x), 0.0, |t| {
        t[0].permute(&[0, 1, 4, 2, 3])?
            .pad(&[2, 1, 1, 1], PadMode::Reflect, 0.0)
    });
    let ints = x.mul_scalar(10.0).unwrap().to_dtype(DType::I64).unwrap();
    check("pad replicate of i64", dev, &[ints], 0.0, |t| {
        t[0].pad(&[2, 2], PadMode::Replicate, 0.0)
    });
}

#[test]
fn one_hot_matches_the_cpu() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let labels = Tensor::from_vec(vec![0i64, 3, 1, 1, 2, 0], &[2, 3]).unwrap();
    check("one_hot", dev, std::slice::from_ref(&labels), 0.0, |t| {
        t[0].one_hot(None, DType::F32)
    });
    check("one_hot 5", dev, std::slice::from_ref(&labels), 0.0, |t| {
        t[0].one_hot(Some(5), DType::F64)
    });
    let err = labels.to_device(dev).unwrap().one_hot(Some(3), DType::F32).unwrap_err();
    assert!(err.to_string().contains("label 3 is outside 0..3"), "{err}");
}

#[test]
fn gradient_through_a_composed_graph() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let inputs = [
        randn(&[4, 8], 30),
        randn(&[6, 8], 31),
        randn(&[6], 32),
        randn(&[4, 6], 33),
    ];
    let grads = |t: &[Tensor]| -> Result<Tensor> {
        let (x, w, b) = (t[0].requires_grad(), t[1].requires_grad(), t[2].requires_grad());
        let h = x.linear(&w, Some(&b))?.gelu()?;
        let p = h.log_softmax(1)?.mul(&t[3])?;
        let loss = p
            .sum(&[1], false)?
            .mean_all()?
            .add(&h.var(&[0], 1, false)?.sum_all()?)?;
        let g = loss.backward()?;
        // All three gradients in one tensor to compare at once.
        Tensor::cat(
            &[
                &g.get(&x).unwrap().flatten(0, -1)?,
                &g.get(&w).unwrap().flatten(0, -1)?,
                &g.get(&b).unwrap().flatten(0, -1)?,
            ],
            0,
        )
    };
    check("composed graph gradients", dev, &inputs, 1e-4, grads);
}

#[test]
fn memory_is_counted_per_device() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let before = seg_tensor::memory::device_live_bytes(dev);
    let t = Tensor::zeros_on(&[1024], DType::F32, dev).unwrap();
    assert_eq!(seg_tensor::memory::device_live_bytes(dev), before + 4096);
    drop(t);
    assert_eq!(seg_tensor::memory::device_live_bytes(dev), before);
    let Device::Cuda(ordinal) = dev else { unreachable!() };
    if let Some(pool) = seg_tensor::memory::cuda_pool_bytes(ordinal).unwrap() {
        assert!(pool.reserved >= pool.used, "{pool:?}");
    }
}

#[test]
fn mixing_devices_is_an_error_naming_both() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let a = randn(&[3], 34);
    let b = a.to_device(dev).unwrap();
    let err = a.add(&b).unwrap_err().to_string();
    assert!(err.contains("cpu") && err.contains("cuda:0"), "{err}");
    let err = b.matmul(&a.reshape(&[3, 1]).unwrap()).unwrap_err().to_string();
    assert!(err.contains("cpu") && err.contains("cuda:0"), "{err}");
}

#[test]
fn ops_without_a_cuda_path_say_so() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    // Convolution on CUDA computes in f32; f64 stays on the CPU.
    let x = Tensor::randn(&[1, 2, 5, 5], 35, DType::F64)
        .unwrap()
        .to_device(dev)
        .unwrap();
    let w = Tensor::randn(&[3, 2, 3, 3], 36, DType::F64)
        .unwrap()
        .to_device(dev)
        .unwrap();
    let err = x.conv(&w, None, &ConvOptions::default());
    assert!(matches!(err, Err(Error::Unsupported { .. })), "{err:?}");
}

/// MONAI's relative-position index of a 3D window, `(N, N)` row-major, cut to its top-left
/// `n x n` (the tokens of a window clipped at the map's edge).
fn relative_position_index(window: [usize; 3], n: usize) -> Vec<usize> {
    let full: usize = window.iter().product();
    let coords = |t: usize| [t / (window[1] * window[2]), t / window[2] % window[1], t % window[2]];
    let mut index = Vec::with_capacity(n * n);
    for i in 0..n {
        for j in 0..n {
            let (a, b) = (coords(i), coords(j));
            let flat = (0..3).fold(0, |acc, k| acc * (2 * window[k] - 1) + a[k] + window[k] - 1 - b[k]);
            index.push(flat);
        }
    }
    assert!(n <= full);
    index
}

/// `t` as `dtype` and back to f32: the values a `dtype` input holds, for the f32 CPU reference.
fn rounded(t: &Tensor, dtype: DType) -> Tensor {
    t.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap()
}

/// Forward, and the gradients of `sum(out * up)` in every input: `f` on `inputs` (the first
/// `tracked` track gradients), all as f32 tensors in one list.
fn values_and_gradients(
    inputs: &[Tensor],
    tracked: usize,
    up: &[Tensor],
    f: &dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>,
) -> Vec<Tensor> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| if i < tracked { t.requires_grad() } else { t.clone() })
        .collect();
    let outs = f(&leaves).unwrap_or_else(|e| panic!("{e}"));
    let mut loss: Option<Tensor> = None;
    for (o, u) in outs.iter().zip(up) {
        let u = u.to_device(o.device()).unwrap();
        let term = o.to_dtype(DType::F32).unwrap().mul(&u).unwrap().sum_all().unwrap();
        loss = Some(loss.map_or(term.clone(), |l| l.add(&term).unwrap()));
    }
    let g = loss.unwrap().backward().unwrap();
    let mut all = outs;
    for (i, leaf) in leaves[..tracked].iter().enumerate() {
        let grad = g.get(leaf).unwrap_or_else(|| panic!("no gradient for input {i}"));
        assert_eq!(
            grad.dtype(),
            leaf.dtype(),
            "the gradient of input {i} has the input's dtype"
        );
        all.push(grad.clone());
    }
    all.into_iter().map(|t| t.to_dtype(DType::F32).unwrap()).collect()
}

/// Runs `f` on the CPU in f32 and on `dev` in `dtype` (inputs rounded to `dtype` for both), and
/// compares every output and gradient within `tol`; the gradients keep the inputs' dtype.
#[allow(clippy::too_many_arguments)]
fn compare_on_device(
    what: &str,
    dev: Device,
    dtype: DType,
    inputs: &[Tensor],
    tracked: usize,
    up: &[Tensor],
    tol: f64,
    f: &dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>,
) {
    let cpu_inputs: Vec<Tensor> = inputs.iter().map(|t| rounded(t, dtype)).collect();
    let cpu = values_and_gradients(&cpu_inputs, tracked, up, f);
    let gpu_inputs: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_dtype(dtype).unwrap().to_device(dev).unwrap())
        .collect();
    let gpu = values_and_gradients(&gpu_inputs, tracked, up, f);
    assert_eq!(gpu.len(), cpu.len());
    for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        assert_close(&format!("{what} ({dtype:?}): result {i}"), g, c, tol);
    }
}

/// A shift mask `(nW, n, n)`: 0 or -100 at random.
fn shift_mask(nw: usize, n: usize, seed: u64) -> Tensor {
    randn(&[nw, n, n], seed)
        .gt(&Tensor::scalar(0.3f32))
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .mul_scalar(-100.0)
        .unwrap()
}

#[test]
fn window_attention_matches_the_cpu_with_all_gradients() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    // (window, tokens (clipped when below the window's), windows, heads, head_dim, mask windows)
    type Case = ([usize; 3], usize, usize, usize, usize, Option<usize>);
    let cases: [Case; 6] = [
        ([2, 2, 2], 8, 3, 2, 4, None),
        ([2, 3, 2], 12, 4, 3, 8, Some(2)),
        ([3, 3, 3], 20, 2, 1, 16, Some(1)),
        ([4, 4, 4], 64, 2, 2, 12, Some(2)),
        ([7, 7, 7], 343, 2, 2, 32, Some(2)),
        ([5, 5, 5], 70, 3, 4, 5, None),
    ];
    for (k, (window, n, windows, heads, d, nw)) in cases.into_iter().enumerate() {
        let seed = 500 + 10 * k as u64;
        let index = relative_position_index(window, n);
        let entries: usize = window.iter().map(|w| 2 * w - 1).product();
        let c = heads * d;
        let scale = (d as f64).powf(-0.5);
        let mut inputs = vec![randn(&[windows, n, 3 * c], seed), randn(&[entries, heads], seed + 1)];
        inputs.extend(nw.map(|nw| shift_mask(nw, n, seed + 2)));
        let up = [randn(&[windows, n, c], seed + 3)];
        let f = |t: &[Tensor]| -> Result<Vec<Tensor>> {
            let bias = seg_tensor::RelativeBias {
                table: &t[1],
                index: &index,
            };
            Ok(vec![t[0].window_attention(bias, t.get(2), heads, scale)?])
        };
        let what = format!("window_attention {window:?} n {n} heads {heads} d {d} mask {nw:?}");
        // Every input tracks gradients, the mask included.
        let tracked = inputs.len();
        compare_on_device(&what, dev, DType::F32, &inputs, tracked, &up, 1e-4, &f);
        for dtype in [DType::BF16, DType::F16] {
            compare_on_device(&what, dev, dtype, &inputs, tracked, &up, 4e-2, &f);
        }
        // The mask as a constant: no gradient asked for it, the others as before.
        compare_on_device(&what, dev, DType::F32, &inputs, 2, &up, 1e-4, &f);
    }
}

#[test]
fn window_attention_errors_on_the_device_match_the_cpu() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let index = relative_position_index([2, 3, 1], 6);
    let table = randn(&[15, 2], 1);
    let cases = [
        (randn(&[4, 6, 10], 0), None, 2),
        (randn(&[4, 5, 12], 0), None, 2),
        (randn(&[4, 6, 12], 0), Some(randn(&[3, 6, 6], 2)), 2),
        (randn(&[4, 6, 18], 0), None, 3),
    ];
    for (qkv, mask, heads) in cases {
        let run = |qkv: &Tensor, table: &Tensor, mask: Option<&Tensor>| {
            let bias = seg_tensor::RelativeBias { table, index: &index };
            qkv.window_attention(bias, mask, heads, 1.0).unwrap_err().to_string()
        };
        let on = |t: &Tensor| t.to_device(dev).unwrap();
        let cpu = run(&qkv, &table, mask.as_ref());
        let gpu = run(&on(&qkv), &on(&table), mask.as_ref().map(on).as_ref());
        assert_eq!(gpu, cpu);
    }
    let bad_index = vec![15; 36];
    let (qkv, table) = (
        randn(&[4, 6, 12], 0).to_device(dev).unwrap(),
        table.to_device(dev).unwrap(),
    );
    let bias = seg_tensor::RelativeBias {
        table: &table,
        index: &bad_index,
    };
    let err = qkv.window_attention(bias, None, 2, 1.0).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
    let f64_qkv = qkv.to_dtype(DType::F64).unwrap();
    let f64_table = table.to_dtype(DType::F64).unwrap();
    let bias = seg_tensor::RelativeBias {
        table: &f64_table,
        index: &index,
    };
    let err = f64_qkv.window_attention(bias, None, 2, 1.0).unwrap_err();
    assert!(matches!(err, Error::DType { .. }), "{err}");
    let cpu_table = randn(&[15, 2], 1);
    let bias = seg_tensor::RelativeBias {
        table: &cpu_table,
        index: &index,
    };
    let err = qkv.window_attention(bias, None, 2, 1.0).unwrap_err().to_string();
    assert!(err.contains("cpu") && err.contains("cuda:0"), "{err}");
}

/// The scan's inputs: u, delta, A, B, C, then the optional D, z, delta_bias that `present` selects.
fn scan_inputs(shape: [usize; 5], present: [bool; 3], seed: u64) -> Vec<Tensor> {
    let [batch, dim, len, state, groups] = shape;
    let bc: Vec<usize> = if groups == 0 {
        vec![batch, state, len]
    } else {
        vec![batch, groups, state, len]
    };
    let mut inputs = vec![
        randn(&[batch, dim, len], seed),
        randn(&[batch, dim, len], seed + 1)
            .abs()
            .unwrap()
            .mul_scalar(0.5)
            .unwrap(),
        randn(&[dim, state], seed + 2).abs().unwrap().neg().unwrap(),
        randn(&bc, seed + 3),
        randn(&bc, seed + 4),
    ];
    let optional = [vec![dim], vec![batch, dim, len], vec![dim]];
    for (k, (shape, on)) in optional.iter().zip(present).enumerate() {
        if on {
            inputs.push(randn(shape, seed + 5 + k as u64));
        }
    }
    inputs
}

#[test]
fn selective_scan_matches_the_cpu_with_every_option_and_gradient() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    // (batch, dim, len, state, groups (0: B and C without a group axis)), (D, z, delta_bias), softplus
    let cases: [([usize; 5], [bool; 3], bool); 8] = [
        ([1, 3, 5, 2, 0], [false; 3], false),
        ([2, 5, 37, 4, 0], [true, false, false], false),
        ([2, 4, 130, 3, 0], [false, true, false], true),
        ([1, 6, 300, 16, 0], [false, false, true], true),
        ([2, 6, 64, 5, 3], [false; 3], false),
        ([2, 8, 200, 8, 2], [true, true, true], true),
        ([3, 33, 129, 16, 0], [true, true, true], true),
        ([1, 2, 1, 1, 1], [true, true, true], false),
    ];
    for (k, (shape, present, softplus)) in cases.into_iter().enumerate() {
        let inputs = scan_inputs(shape, present, 700 + 10 * k as u64);
        let [batch, dim, len, state, _] = shape;
        let up = [
            randn(&[batch, dim, len], 790 + k as u64),
            randn(&[batch, dim, state], 795 + k as u64),
        ];
        let f = |t: &[Tensor]| -> Result<Vec<Tensor>> {
            let mut optional = t[5..].iter();
            let mut next = |on: bool| if on { optional.next() } else { None };
            let options = seg_tensor::ScanOptions {
                d: next(present[0]),
                z: next(present[1]),
                delta_bias: next(present[2]),
                delta_softplus: softplus,
            };
            let (y, last) = t[0].selective_scan(&t[1], &t[2], &t[3], &t[4], &options)?;
            Ok(vec![y, last])
        };
        let y_only = |t: &[Tensor]| -> Result<Vec<Tensor>> { Ok(vec![f(t)?.swap_remove(0)]) };
        let what = format!("selective_scan {shape:?} D, z, delta_bias {present:?} softplus {softplus}");
        let n = inputs.len();
        compare_on_device(&what, dev, DType::F32, &inputs, n, &up, 1e-4, &f);
        compare_on_device(
            &format!("{what}, y only"),
            dev,
            DType::F32,
            &inputs,
            n,
            &up,
            1e-4,
            &y_only,
        );
        // bf16: each output alone (adding two bf16 gradients needs bf16 arithmetic on the device).
        let last_only = |t: &[Tensor]| -> Result<Vec<Tensor>> { Ok(vec![f(t)?.swap_remove(1)]) };
        compare_on_device(
            &format!("{what}, y only"),
            dev,
            DType::BF16,
            &inputs,
            n,
            &up,
            5e-2,
            &y_only,
        );
        let last_up = [up[1].clone()];
        compare_on_device(
            &format!("{what}, last state only"),
            dev,
            DType::BF16,
            &inputs,
            n,
            &last_up,
            5e-2,
            &last_only,
        );
    }
}

#[test]
fn selective_scan_errors_on_the_device_match_the_cpu() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let on = |t: &Tensor| t.to_device(dev).unwrap();
    let (u, a, bc) = (randn(&[1, 4, 5], 1), randn(&[4, 2], 2), randn(&[1, 2, 5], 3));
    let grouped = randn(&[1, 3, 2, 5], 5);
    let bad_z = randn(&[1, 4, 4], 6);
    let cases: [(&Tensor, &Tensor, Option<&Tensor>); 3] = [
        (&randn(&[3, 2], 4), &bc, None),
        (&a, &grouped, None),
        (&a, &bc, Some(&bad_z)),
    ];
    for (a, bc, z) in cases {
        let run = |u: &Tensor, a: &Tensor, bc: &Tensor, z: Option<&Tensor>| {
            let options = seg_tensor::ScanOptions {
                z,
                ..Default::default()
            };
            u.selective_scan(u, a, bc, bc, &options).unwrap_err().to_string()
        };
        let cpu = run(&u, a, bc, z);
        let gpu = run(&on(&u), &on(a), &on(bc), z.map(on).as_ref());
        assert_eq!(gpu, cpu);
    }
    // A state larger than the kernels' shared memory takes: an error, not a panic.
    let (a, bc) = (randn(&[4, 2000], 7), randn(&[1, 2000, 5], 8));
    let err = on(&u).selective_scan(&on(&u), &on(&a), &on(&bc), &on(&bc), &Default::default());
    assert!(err.unwrap_err().to_string().contains("state size"));
    let f64_u = on(&u).to_dtype(DType::F64).unwrap();
    let f64_a = on(&randn(&[4, 2], 2)).to_dtype(DType::F64).unwrap();
    let f64_bc = on(&randn(&[1, 2, 5], 3)).to_dtype(DType::F64).unwrap();
    let err = f64_u.selective_scan(&f64_u, &f64_a, &f64_bc, &f64_bc, &Default::default());
    assert!(matches!(err, Err(Error::DType { .. })), "{err:?}");
}

#[test]
fn index_select_flip_and_reflect_pad_on_the_device_with_gradients() {
    let Some((dev, _one_at_a_time)) = gpu() else { return };
    let x = randn(&[3, 5, 4], 60);
    let index = Tensor::from_vec(vec![4i64, 0, 2, 2, 1, 3], &[6]).unwrap();
    check("index_select", dev, &[x.clone(), index.clone()], 0.0, |t| {
        t[0].index_select(1, &t[1])
    });
    check("flip", dev, std::slice::from_ref(&x), 0.0, |t| t[0].flip(&[0, 2]));
    check("roll", dev, std::slice::from_ref(&x), 0.0, |t| {
        t[0].roll(&[2, -1], &[1, 2])
    });
    check("reflect pad", dev, std::slice::from_ref(&x), 0.0, |t| {
        t[0].pad(&[1, 2, 2, 1], PadMode::Reflect, 0.0)
    });
    let up = randn(&[3, 6, 4], 61);
    let grad_of = |t: &[Tensor]| -> Result<Tensor> {
        let leaf = t[0].requires_grad();
        let y = leaf
            .index_select(1, &t[1])?
            .flip(&[2])?
            .pad(&[1, 1], PadMode::Replicate, 0.0)?;
        let g = y.narrow(2, 1, 4)?.mul(&t[2])?.sum_all()?.backward()?;
        Ok(g.get(&leaf).unwrap().clone())
    };
    check("index_select/flip/pad backward", dev, &[x, index, up], 1e-6, grad_of);
}

// ----- without a GPU -----

#[test]
fn opening_a_cuda_device_fails_politely_without_one() {
    // Where a GPU is present this opens it; elsewhere the error names what is missing. Never a panic.
    match Device::cuda(0) {
        Ok(dev) => assert_eq!(dev, Device::Cuda(0)),
        Err(Error::Cuda(e)) => eprintln!("no CUDA here, as expected: {e}"),
        Err(other) => panic!("unexpected error: {other}"),
    }
    // An ordinal no machine has.
    assert!(Device::cuda(1 << 20).is_err());
    let x = randn(&[2, 2], 36);
    assert!(x.to_device(Device::Cuda(1 << 20)).is_err());
    assert!(Tensor::zeros_on(&[2], DType::F32, Device::Cuda(1 << 20)).is_err());
}

#[test]
fn device_errors_name_both_devices() {
    let err = Error::DeviceMismatch {
        op: "add",
        lhs: Device::Cpu,
        rhs: Device::Cuda(1),
    };
    assert_eq!(
        err.to_string(),
        "add: operands on cpu and cuda:1; move them to one device with to_device"
    );
    let err = Error::Unsupported {
        op: "conv",
        device: Device::Cuda(0),
    };
    assert!(err.to_string().starts_with("conv: not implemented on cuda:0"));
}
