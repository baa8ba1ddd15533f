//! Saved tensors are released as soon as their backward has run.
//!
//! This file holds one test so that no other test allocates tensors in the process while it
//! measures the global storage counters.

use seg_tensor::{memory, DType, Tensor};

#[test]
fn backward_of_a_deep_chain_frees_saved_tensors_as_it_goes() {
    const DEPTH: usize = 64;
    const N: usize = 1 << 16; // 256 KiB per f32 tensor
    let bytes = N * 4;

    let x = Tensor::randn(&[N], 3, DType::F32).unwrap().requires_grad();
    let mut y = x.clone();
    for _ in 0..DEPTH {
        // Each tanh saves its input for the backward: DEPTH saved tensors after the forward.
        y = y.tanh().unwrap();
    }
    let loss = y.sum_all().unwrap();
    drop(y);
    let after_forward = memory::live_bytes();
    assert!(
        after_forward >= DEPTH * bytes,
        "forward keeps {after_forward} bytes, expected the saved inputs"
    );

    memory::reset_peak();
    let grads = loss.backward().unwrap();
    let peak = memory::peak_bytes();
    drop(loss);
    let after_backward = memory::live_bytes();

    // Were saved tensors kept until the end, the backward would add one gradient buffer per step on
    // top of them (2 x DEPTH buffers). Freed as it goes, the peak stays within a few buffers of the
    // forward's footprint, and afterwards only x and its gradient remain.
    println!(
        "deep chain of {DEPTH} tanh over {bytes} bytes: after forward {:.1} MiB, backward peak {:.1} MiB, after backward {:.1} MiB",
        after_forward as f64 / (1 << 20) as f64,
        peak as f64 / (1 << 20) as f64,
        after_backward as f64 / (1 << 20) as f64
    );
    assert!(
        peak <= after_forward + 3 * bytes,
        "peak {peak} vs forward {after_forward}"
    );
    assert!(
        after_backward <= 3 * bytes,
        "{after_backward} bytes still alive after backward"
    );
    assert_eq!(grads.get(&x).unwrap().shape(), &[N]);
}
