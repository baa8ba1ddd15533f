//! Invalid arguments return `Err` (never panic), and the message says what was expected and what
//! was found.

use seg_tensor::{DType, Error, PadMode, Result, Tensor};

fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F32)
}

fn idx(values: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape).unwrap()
}

/// Runs `f`, which must return an error (a panic fails the test too), and checks that its message
/// contains every one of `needles`.
#[track_caller]
fn expect_err<T: std::fmt::Debug>(f: impl FnOnce() -> Result<T>, needles: &[&str]) -> Error {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let err = match result {
        Ok(Ok(v)) => panic!("expected an error, got Ok({v:?})"),
        Ok(Err(e)) => e,
        Err(_) => panic!("the op panicked instead of returning an error"),
    };
    let msg = err.to_string();
    for needle in needles {
        assert!(msg.contains(needle), "message {msg:?} should mention {needle:?}");
    }
    err
}

#[test]
fn matmul_shape_mismatch() {
    let e = expect_err(
        || zeros(&[2, 3]).matmul(&zeros(&[4, 5])),
        &["matmul", "3 rows", "[2, 3]", "[4, 5]"],
    );
    assert!(matches!(e, Error::ShapeMismatch { .. }));
    expect_err(|| zeros(&[3]).matmul(&zeros(&[4])), &["matmul", "[4"]);
    expect_err(|| zeros(&[2, 3]).matmul(&zeros(&[2])), &["matmul", "3 rows"]);
    expect_err(
        || zeros(&[2, 2, 3]).matmul(&zeros(&[2, 4])),
        &["matmul", "3 rows", "[2, 4]"],
    );
    // Batch axes that do not broadcast.
    let e = expect_err(
        || zeros(&[2, 2, 3]).matmul(&zeros(&[3, 3, 4])),
        &["matmul", "[2]", "[3]"],
    );
    assert!(matches!(e, Error::Broadcast { .. }));
    expect_err(
        || zeros(&[]).matmul(&zeros(&[3])),
        &["matmul", "at least one dimension"],
    );
    expect_err(
        || zeros(&[2, 3]).matmul(&Tensor::zeros(&[3, 2], DType::F64)),
        &["matmul", "f32", "F64"],
    );
    // linear: wrong weight rank, wrong bias shape, wrong in-features.
    expect_err(
        || zeros(&[2, 3]).linear(&zeros(&[3]), None),
        &["linear", "(out, 3)", "[3]"],
    );
    expect_err(
        || zeros(&[2, 3]).linear(&zeros(&[4, 3]), Some(&zeros(&[3]))),
        &["linear", "bias of shape [4]", "[3]"],
    );
    expect_err(
        || zeros(&[2, 3]).linear(&zeros(&[4, 5]), None),
        &["linear", "(out, 3)", "[4, 5]"],
    );
}

#[test]
fn broadcast_mismatch_in_binary_ops() {
    for (name, f) in [
        ("add", Tensor::add as fn(&Tensor, &Tensor) -> Result<Tensor>),
        ("sub", Tensor::sub),
        ("mul", Tensor::mul),
        ("div", Tensor::div),
        ("maximum", Tensor::maximum),
        ("pow", Tensor::pow),
        ("compare", Tensor::lt),
    ] {
        let e = expect_err(|| f(&zeros(&[2, 3]), &zeros(&[4, 3])), &[name, "[2, 3]", "[4, 3]"]);
        assert!(matches!(e, Error::Broadcast { .. }), "{name}: {e:?}");
    }
    expect_err(|| zeros(&[2, 3]).add(&zeros(&[2])), &["add", "[2, 3]", "[2]"]);
    // Mixed dtypes: floats promote (as PyTorch), a float with an integer is an error.
    expect_err(
        || zeros(&[2]).add(&Tensor::zeros(&[2], DType::I64)),
        &["add", "f32", "I64"],
    );
    // where_: a non-u8 mask, values that do not broadcast.
    expect_err(
        || zeros(&[2]).where_(&zeros(&[2]), &zeros(&[2])),
        &["where", "u8 mask", "F32"],
    );
    let mask = Tensor::zeros(&[2], DType::U8);
    expect_err(|| mask.where_(&zeros(&[3]), &zeros(&[2])), &["where", "[2]", "[3]"]);
    // sum_to_shape to a shape that does not broadcast.
    expect_err(|| zeros(&[3]).sum_to_shape(&[2, 3]), &["sum_to_shape", "[3]", "[2, 3]"]);
    expect_err(
        || zeros(&[2, 3]).sum_to_shape(&[3, 2]),
        &["sum_to_shape", "[2, 3]", "[3, 2]"],
    );
    expect_err(|| zeros(&[2, 4]).sum_to_shape(&[2]), &["sum_to_shape", "[2, 4]", "[2]"]);
    expect_err(
        || zeros(&[2, 3]).broadcast_to(&[4, 3]),
        &["broadcast_to", "[2, 3]", "[4, 3]"],
    );
    expect_err(|| zeros(&[2, 3]).broadcast_to(&[3]), &["broadcast_to"]);
}

#[test]
fn cat_stack_split_errors() {
    let e = expect_err(
        || Tensor::cat(&[&zeros(&[2, 3]), &zeros(&[3, 3])], 1),
        &["cat", "[2, 3]", "axis but 1", "[3, 3]"],
    );
    assert!(matches!(e, Error::ShapeMismatch { .. }));
    expect_err(|| Tensor::cat(&[&zeros(&[2, 3]), &zeros(&[2])], 0), &["cat", "[2]"]);
    expect_err(|| Tensor::cat(&[], 0), &["cat", "no tensors"]);
    expect_err(
        || Tensor::cat(&[&zeros(&[2]), &Tensor::zeros(&[2], DType::I64)], 0),
        &["cat", "I64"],
    );
    expect_err(|| Tensor::cat(&[&zeros(&[2])], 1), &["cat", "dimension 1", "rank 1"]);
    expect_err(
        || Tensor::stack(&[&zeros(&[2, 3]), &zeros(&[2, 2])], 0),
        &["stack", "[2, 3]", "[2, 2]"],
    );
    expect_err(
        || Tensor::stack(&[&zeros(&[2])], 2),
        &["unsqueeze", "dimension 2", "rank 2"],
    );
    expect_err(|| zeros(&[5]).split_sizes(&[2, 2], 0), &["split", "[2, 2]", "5"]);
    expect_err(|| zeros(&[5]).split(0, 0), &["split", "positive"]);
    expect_err(|| zeros(&[5]).chunk(0, 0), &["chunk", "positive"]);
    expect_err(|| zeros(&[5]).chunk(2, 1), &["dimension 1", "rank 1"]);
}

#[test]
fn dims_out_of_range() {
    let x = zeros(&[2, 3]);
    type Case<'a> = (&'static str, Box<dyn Fn() -> Result<Tensor> + 'a>);
    let cases: Vec<Case> = vec![
        ("sum", Box::new(|| x.sum(&[2], false))),
        ("sum", Box::new(|| x.sum(&[-3], false))),
        ("mean", Box::new(|| x.mean(&[0, 5], true))),
        ("var", Box::new(|| x.var(&[2], 1, false))),
        ("logsumexp", Box::new(|| x.logsumexp(&[3], false))),
        ("max", Box::new(|| Ok(x.max_dim(2, false)?.0))),
        ("min", Box::new(|| Ok(x.min_dim(-3, false)?.0))),
        ("max", Box::new(|| x.argmax(2, false))),
        ("softmax", Box::new(|| x.softmax(2))),
        ("log_softmax", Box::new(|| x.log_softmax(-3))),
        ("permute", Box::new(|| x.permute(&[0, 2]))),
        ("transpose", Box::new(|| x.transpose(0, 2))),
        ("narrow", Box::new(|| x.narrow(2, 0, 1))),
        ("squeeze", Box::new(|| x.squeeze(2))),
        ("flatten", Box::new(|| x.flatten(0, 2))),
        ("roll", Box::new(|| x.roll(&[1], &[2]))),
        ("gather", Box::new(|| x.gather(2, &idx(&[0], &[1, 1])))),
        ("index_select", Box::new(|| x.index_select(2, &idx(&[0], &[1])))),
        ("dim", Box::new(|| Ok(Tensor::scalar(x.dim(2)? as f64)))),
    ];
    for (op, f) in cases {
        let e = expect_err(f, &[op, "out of range", "rank 2"]);
        assert!(matches!(e, Error::DimOutOfRange { .. }), "{op}: {e:?}");
    }
    // unsqueeze accepts one more position than the rank.
    expect_err(|| x.unsqueeze(3), &["unsqueeze", "dimension 3", "rank 3"]);
    expect_err(|| x.unsqueeze(-4), &["unsqueeze", "dimension -4", "rank 3"]);
    expect_err(|| x.sum(&[1, -1], false), &["sum", "more than once"]);
    expect_err(|| x.permute(&[0]), &["permute", "[0]", "2 axes"]);
    expect_err(|| x.permute(&[1, 1]), &["permute", "more than once"]);
    expect_err(|| x.narrow(1, 2, 2), &["narrow", "0..3"]);
    expect_err(|| x.narrow(1, usize::MAX, 2), &["narrow", "0..3"]);
    expect_err(|| x.flatten(1, 0), &["flatten", "start dim 1", "end dim 0"]);
    expect_err(|| x.t()?.t()?.unsqueeze(0)?.t(), &["t", "rank-2", "[1, 2, 3]"]);
    expect_err(|| Ok(zeros(&[2, 0]).max_dim(1, false)?.0), &["max", "empty axis 1"]);
}

#[test]
fn wrong_dtypes() {
    let u = Tensor::from_vec(vec![1u8, 2, 3], &[3]).unwrap();
    let i = idx(&[1, 2, 3], &[3]);
    for (name, f) in [
        ("exp", Tensor::exp as fn(&Tensor) -> Result<Tensor>),
        ("log", Tensor::log),
        ("relu", Tensor::relu),
        ("sigmoid", Tensor::sigmoid),
        ("sum", Tensor::sum_all),
        ("mean", Tensor::mean_all),
    ] {
        for t in [&u, &i] {
            let e = expect_err(|| f(t), &[name, "f32 or f64", &format!("{:?}", t.dtype())]);
            assert!(matches!(e, Error::DType { .. }), "{name}: {e:?}");
        }
    }
    expect_err(|| u.softmax(0), &["softmax", "f32 or f64", "U8"]);
    expect_err(|| u.var(&[0], 1, false), &["var", "U8"]);
    expect_err(|| i.logsumexp(&[0], false), &["logsumexp", "I64"]);
    expect_err(|| u.add(&u), &["add", "U8"]);
    expect_err(|| i.matmul(&i), &["matmul", "I64"]);
    // f16/bf16 compute in f32 with the result rounded (seg_tensor's autocast module doc).
    let h = Tensor::zeros(&[3], DType::F16);
    assert_eq!(h.exp().unwrap().dtype(), DType::F16);
    assert_eq!(h.max_dim(0, false).unwrap().0.dtype(), DType::F16);
    assert_eq!(h.lt(&h).unwrap().dtype(), DType::U8);
    // Index tensors must be i64.
    let x = zeros(&[3]);
    let f_idx = Tensor::zeros(&[1], DType::F32);
    expect_err(|| x.gather(0, &f_idx), &["gather", "i64 index", "F32"]);
    expect_err(|| x.index_select(0, &f_idx), &["index_select", "i64 index", "F32"]);
    expect_err(|| x.scatter_add(0, &f_idx, &x), &["scatter_add", "i64 index", "F32"]);
    expect_err(|| f_idx.one_hot(Some(2), DType::F32), &["one_hot", "i64 index", "F32"]);
    expect_err(|| x.values::<f64>().map(|v| v.len()), &["values", "f64", "F32"]);
    expect_err(|| Tensor::randn(&[2], 0, DType::I64), &["random", "float dtype", "I64"]);
}

#[test]
fn bad_pad_sizes() {
    let x = zeros(&[2, 4]);
    expect_err(
        || x.pad(&[1], PadMode::Constant, 0.0),
        &["pad", "1 pad values", "rank 2"],
    );
    expect_err(
        || x.pad(&[1, 1, 1, 1, 1, 1], PadMode::Constant, 0.0),
        &["pad", "6 pad values", "rank 2"],
    );
    expect_err(
        || x.pad(&[4, 0], PadMode::Reflect, 0.0),
        &["pad", "Reflect", "[4, 0]", "size 4"],
    );
    expect_err(
        || x.pad(&[0, 0, 2, 0], PadMode::Reflect, 0.0),
        &["pad", "Reflect", "axis 0", "size 2"],
    );
    expect_err(
        || x.pad(&[5, 0], PadMode::Circular, 0.0),
        &["pad", "Circular", "size 4"],
    );
    expect_err(
        || x.pad(&[-1, 0], PadMode::Replicate, 0.0),
        &["pad", "Replicate", "[-1, 0]"],
    );
    expect_err(
        || x.pad(&[-3, -2], PadMode::Constant, 0.0),
        &["pad", "negative size", "size 4"],
    );
    expect_err(|| zeros(&[0]).pad(&[1, 1], PadMode::Replicate, 0.0), &["pad", "size 0"]);
    expect_err(|| x.roll(&[1, 2], &[0]), &["roll", "2 shifts", "1 dims"]);
    expect_err(|| x.roll(&[1, 2], &[]), &["roll", "exactly one shift"]);
}

#[test]
fn index_out_of_range() {
    let x = zeros(&[2, 3]);
    let e = expect_err(
        || x.gather(1, &idx(&[0, 3], &[1, 2])),
        &["gather", "index 3", "axis 1 of size 3"],
    );
    assert!(matches!(e, Error::InvalidArgument { .. }));
    expect_err(|| x.gather(0, &idx(&[-1], &[1, 1])), &["gather", "index -1", "size 2"]);
    expect_err(|| x.gather(1, &idx(&[0; 9], &[3, 3])), &["gather", "[2, 3]", "[3, 3]"]);
    expect_err(|| x.gather(1, &idx(&[0], &[1])), &["gather", "rank 2", "[1]"]);
    expect_err(
        || x.index_select(0, &idx(&[0, 2], &[2])),
        &["index_select", "index 2", "axis 0 of size 2"],
    );
    expect_err(
        || x.index_select(1, &idx(&[-1], &[1])),
        &["index_select", "index -1", "size 3"],
    );
    expect_err(
        || x.index_select(1, &idx(&[0], &[1, 1])),
        &["index_select", "1-D index", "[1, 1]"],
    );
    expect_err(
        || x.scatter_add(1, &idx(&[5], &[1, 1]), &zeros(&[1, 1])),
        &["scatter_add", "index 5", "size 3"],
    );
    expect_err(
        || x.scatter_add(1, &idx(&[0, 1], &[1, 2]), &zeros(&[2, 2])),
        &["scatter_add", "[1, 2]", "[2, 2]"],
    );
    let labels = idx(&[0, 3, 1], &[3]);
    expect_err(|| labels.one_hot(Some(3), DType::F32), &["one_hot", "label 3", "0..3"]);
    expect_err(|| idx(&[-1], &[1]).one_hot(None, DType::F32), &["one_hot", "label -1"]);
    expect_err(
        || idx(&[-2], &[1]).one_hot(Some(4), DType::F32),
        &["one_hot", "label -2", "0..4"],
    );
}

#[test]
fn shape_errors_in_views_and_construction() {
    let x = zeros(&[2, 3]);
    expect_err(|| x.reshape(&[4, 2]), &["reshape", "8 elements", "[2, 3]"]);
    expect_err(|| x.view(&[-1, 4]), &["reshape", "6 elements", "[-1, 4]"]);
    expect_err(|| x.view(&[-1, -1]), &["reshape", "[-1, -1]"]);
    expect_err(|| x.view(&[-2, 3]), &["reshape", "[-2, 3]"]);
    expect_err(|| x.expand(&[3]), &["expand", "[2, 3]", "[3]"]);
    expect_err(|| x.expand(&[-1, 2, 3]), &["expand", "-1", "[2, 3]"]);
    expect_err(|| x.expand(&[4, 3]), &["broadcast_to", "[2, 3]", "[4, 3]"]);
    expect_err(
        || Tensor::from_vec(vec![1.0f32; 5], &[2, 3]),
        &["from_vec", "5 values", "[2, 3]"],
    );
    expect_err(|| x.item(), &["item", "one element", "[2, 3]"]);
    expect_err(|| Tensor::arange(0.0, 1.0, 0.0, DType::F32), &["arange", "steps of 0"]);
    expect_err(|| x.clamp(1.0, 0.0), &["clamp", "min 1", "max 0"]);
    // Backward from a non-scalar, and with a wrong-shaped gradient.
    let leaf = x.requires_grad();
    expect_err(
        || leaf.exp()?.backward().map(|g| g.len()),
        &["backward", "one-element", "[2, 3]"],
    );
    expect_err(
        || leaf.exp()?.backward_with(&zeros(&[3])).map(|g| g.len()),
        &["backward_with", "[2, 3]", "[3]"],
    );
    expect_err(
        || x.exp()?.sum_all()?.backward().map(|g| g.len()),
        &["backward", "does not depend"],
    );
    // A graph can only be differentiated once.
    let y = leaf.exp().unwrap().sum_all().unwrap();
    y.backward().unwrap();
    expect_err(
        || y.backward().map(|g| g.len()),
        &["backward", "already differentiated"],
    );
}
