//! Gradient checkpointing keeps a function's intermediates out of memory between forward and
//! backward. One test in this file, so that nothing else allocates while it reads the counters.

use std::sync::Arc;

use seg_tensor::{checkpoint, memory, CheckpointFn, DType, Tensor};

#[test]
fn a_checkpointed_chain_keeps_only_its_input_and_output() {
    const N: usize = 1 << 16;
    let bytes = N * 4;
    let x = Tensor::randn(&[N], 1, DType::F32).unwrap().requires_grad();
    let chain: CheckpointFn = Arc::new(|x| (0..16).try_fold(x.clone(), |y, _| y.tanh()));

    let before = memory::live_bytes();
    let plain = chain(&x).unwrap();
    let plain_bytes = memory::live_bytes() - before;
    drop(plain);

    let before = memory::live_bytes();
    let y = checkpoint(chain.clone(), &x, &[]).unwrap();
    let ckpt_bytes = memory::live_bytes() - before;
    println!("16 tanh over {bytes} bytes: plain keeps {plain_bytes} bytes, checkpointed {ckpt_bytes}");
    assert!(plain_bytes >= 16 * bytes, "{plain_bytes}");
    assert!(ckpt_bytes <= bytes, "{ckpt_bytes}");

    let grads = y.sum_all().unwrap().backward().unwrap();
    let expected = {
        let y = chain(&x).unwrap();
        y.sum_all().unwrap().backward().unwrap().get(&x).unwrap().to_vec_f64()
    };
    assert_eq!(grads.get(&x).unwrap().to_vec_f64(), expected);
}
