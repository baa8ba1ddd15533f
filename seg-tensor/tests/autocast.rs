//! Autocast: the dtypes each policy gives, values equal to "f32 on half-rounded inputs, rounded
//! output", gradients reaching f32 master weights in f32, nesting and disabling.

use seg_tensor::{autocast, autocast_dtype, no_autocast, ConvOptions, DType, RelativeBias, Result, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, seed, DType::F32).unwrap()
}

/// `t` rounded to `half` and back to f32: the value a half input holds.
fn rounded(t: &Tensor, half: DType) -> Tensor {
    t.to_dtype(half).unwrap().to_dtype(DType::F32).unwrap()
}

fn bits(t: &Tensor) -> Vec<u64> {
    t.to_vec_f64().iter().map(|x| x.to_bits()).collect()
}

/// A 2 x 2 window's relative-position index into a 9-entry table.
fn index_2x2() -> Vec<usize> {
    let coords = [(0, 0), (0, 1), (1, 0), (1, 1)];
    coords
        .iter()
        .flat_map(|&(a0, b0)| coords.iter().map(move |&(a1, b1)| (a0 + 1 - a1) * 3 + (b0 + 1 - b1)))
        .collect()
}

/// The listed lower-precision ops on f32 inputs `t`: conv3d with bias, matmul, linear with bias,
/// conv_transpose3d, window attention with a mask.
fn lower_ops(t: &[Tensor]) -> Result<Vec<Tensor>> {
    let index = index_2x2();
    let bias = RelativeBias {
        table: &t[7],
        index: &index,
    };
    Ok(vec![
        t[0].conv3d(&t[1], Some(&t[2]), &ConvOptions::default())?,
        t[3].matmul(&t[4])?,
        t[3].linear(&t[5], Some(&t[2]))?,
        t[0].conv_transpose3d(&t[1].transpose(0, 1)?, Some(&t[2]), &Default::default())?,
        t[6].window_attention(bias, Some(&t[8]), 2, 0.5)?,
    ])
}

fn lower_inputs() -> Vec<Tensor> {
    vec![
        randn(&[1, 2, 3, 4, 3], 1),
        randn(&[3, 2, 2, 2, 2], 2),
        randn(&[3], 3),
        randn(&[5, 4], 4),
        randn(&[4, 6], 5),
        randn(&[3, 4], 6),
        randn(&[2, 4, 12], 7),
        randn(&[9, 2], 8),
        randn(&[2, 4, 4], 9),
    ]
}

#[test]
fn listed_ops_run_in_the_autocast_dtype_and_equal_rounded_f32() {
    let inputs = lower_inputs();
    for half in [DType::BF16, DType::F16] {
        let amp = autocast(half, || lower_ops(&inputs)).unwrap();
        let reference: Vec<Tensor> = lower_ops(&inputs.iter().map(|t| rounded(t, half)).collect::<Vec<_>>())
            .unwrap()
            .iter()
            .map(|y| y.to_dtype(half).unwrap())
            .collect();
        for (i, (a, r)) in amp.iter().zip(&reference).enumerate() {
            assert_eq!(a.dtype(), half, "op {i}");
            assert_eq!(bits(a), bits(r), "op {i} in {half:?}");
        }
    }
    // Outside autocast the same f32 ops stay f32.
    assert!(lower_ops(&inputs).unwrap().iter().all(|y| y.dtype() == DType::F32));
}

#[test]
fn f32_list_ops_promote_half_inputs_and_other_ops_keep_them() {
    let x = randn(&[2, 3, 4], 10).to_dtype(DType::BF16).unwrap();
    let w = randn(&[4], 11);
    autocast(DType::BF16, || {
        assert_eq!(x.softmax(-1)?.dtype(), DType::F32);
        assert_eq!(x.log_softmax(-1)?.dtype(), DType::F32);
        assert_eq!(x.layer_norm(&[4], Some(&w), None, 1e-5)?.dtype(), DType::F32);
        assert_eq!(x.group_norm(1, None, None, 1e-5)?.dtype(), DType::F32);
        assert_eq!(x.sum_all()?.dtype(), DType::F32);
        assert_eq!(x.mean(&[1], false)?.dtype(), DType::F32);
        assert_eq!(x.exp()?.dtype(), DType::F32);
        assert_eq!(x.softplus()?.dtype(), DType::F32);
        // Not listed: the input's type, with the value of f32 compute rounded once.
        let y = x.gelu()?;
        assert_eq!(y.dtype(), DType::BF16);
        let expected = x.to_dtype(DType::F32)?.gelu()?.to_dtype(DType::BF16)?;
        assert_eq!(bits(&y), bits(&expected));
        assert_eq!(x.pad(&[1, 1], seg_tensor::PadMode::Constant, 0.0)?.dtype(), DType::BF16);
        Ok(())
    })
    .unwrap();
    // Outside autocast an f32-list op keeps a half input's type.
    assert_eq!(x.softmax(-1).unwrap().dtype(), DType::BF16);
}

#[test]
fn mixed_float_types_promote_on_and_off_autocast() {
    let (h, f) = (randn(&[3], 12).to_dtype(DType::BF16).unwrap(), randn(&[2, 3], 13));
    let sum = h.add(&f).unwrap();
    assert_eq!(sum.dtype(), DType::F32);
    assert_eq!(bits(&sum), bits(&h.to_dtype(DType::F32).unwrap().add(&f).unwrap()));
    let g = randn(&[3], 14).to_dtype(DType::F16).unwrap();
    assert_eq!(h.mul(&g).unwrap().dtype(), DType::F32, "f16 with bf16 is f32");
    assert_eq!(h.add(&h).unwrap().dtype(), DType::BF16);
    let joined = Tensor::cat(&[&h.unsqueeze(0).unwrap(), &f], 0).unwrap();
    assert_eq!((joined.dtype(), joined.shape()), (DType::F32, &[3, 3][..]));
    assert_eq!(h.gt(&f).unwrap().dtype(), DType::U8);
}

#[test]
fn gradients_reach_f32_master_weights_in_f32() {
    let x = randn(&[4, 3], 15);
    let w = randn(&[2, 3], 16).requires_grad();
    let b = randn(&[2], 17).requires_grad();
    let loss_of = || x.linear(&w, Some(&b))?.relu()?.sum_all();
    let grads_amp = autocast(DType::BF16, || loss_of()?.backward()).unwrap();
    let grads = loss_of().unwrap().backward().unwrap();
    for p in [&w, &b] {
        let (amp, exact) = (grads_amp.get(p).unwrap(), grads.get(p).unwrap());
        assert_eq!(amp.dtype(), DType::F32);
        for (a, e) in amp.to_vec_f64().iter().zip(exact.to_vec_f64()) {
            assert!((a - e).abs() <= 0.02 * (1.0 + e.abs()), "{a} vs {e}");
        }
    }
    // The weight's gradient is that of the bf16 computation: dW = round(dY^T round(x)), in f32.
    let dy = x.linear(&w, Some(&b)).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap();
    let dy = dy.to_dtype(DType::F32).unwrap();
    let dw = rounded(&x, DType::BF16).t().unwrap().matmul(&dy).unwrap().t().unwrap();
    let dw = rounded(&dw, DType::BF16);
    assert_eq!(bits(grads_amp.get(&w).unwrap()), bits(&dw));
}

#[test]
fn scopes_nest_disable_and_restore() {
    assert_eq!(autocast_dtype(), None);
    autocast(DType::BF16, || {
        assert_eq!(autocast_dtype(), Some(DType::BF16));
        autocast(DType::F16, || {
            assert_eq!(autocast_dtype(), Some(DType::F16));
            assert_eq!(randn(&[2, 2], 0).matmul(&randn(&[2, 2], 1))?.dtype(), DType::F16);
            Ok(())
        })?;
        no_autocast(|| {
            assert_eq!(
                randn(&[2, 2], 0).matmul(&randn(&[2, 2], 1)).unwrap().dtype(),
                DType::F32
            )
        });
        assert_eq!(autocast_dtype(), Some(DType::BF16));
        Ok(())
    })
    .unwrap();
    // Restored after an error, too.
    let failed: Result<()> = autocast(DType::BF16, || randn(&[2, 3], 0).matmul(&randn(&[2, 3], 1)).map(|_| ()));
    assert!(failed.is_err());
    assert_eq!(autocast_dtype(), None);
    let err = autocast(DType::F32, || Ok(())).unwrap_err();
    assert!(err.to_string().contains("f16 or bf16"), "{err}");
}

#[test]
fn f64_inputs_are_not_cast() {
    let (a, b) = (
        Tensor::randn(&[2, 3], 0, DType::F64).unwrap(),
        Tensor::randn(&[3, 2], 1, DType::F64).unwrap(),
    );
    let y = autocast(DType::BF16, || a.matmul(&b)).unwrap();
    assert_eq!(y.dtype(), DType::F64);
    assert_eq!(bits(&y), bits(&a.matmul(&b).unwrap()));
}
