//! Every loss answers inputs of the wrong rank or shape with an error, never a panic.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::losses;
use seg_tensor::{DType, Tensor};

#[test]
fn inputs_without_spatial_axes_or_of_other_shapes_are_errors_not_panics() {
    let cases: [(&[usize], &[usize]); 6] = [
        (&[2, 3], &[2, 3]),
        (&[2, 3], &[2, 1]),
        (&[3], &[3]),
        (&[], &[]),
        (&[2, 3, 4], &[2, 3, 5]),
        (&[2, 3, 4, 4], &[2, 4, 4]),
    ];
    let mut panicked = Vec::new();
    for (name, forward) in losses() {
        for (x, y) in cases {
            let x_t = Tensor::randn(x, 1, DType::F32).unwrap();
            let y_t = Tensor::rand(y, 2, DType::F32).unwrap();
            let outcome = catch_unwind(AssertUnwindSafe(|| forward(&x_t, &y_t)));
            match outcome {
                Err(_) => panicked.push(format!("{name} on {x:?} against {y:?}")),
                // The overlap losses need spatial axes to sum over.
                Ok(result) if x.len() < 3 && (name.contains("Dice") || name.contains("Tversky")) => {
                    let err = result.expect_err(name).to_string();
                    assert!(err.contains("spatial"), "{name}: {err}");
                }
                Ok(_) => {}
            }
        }
    }
    assert!(panicked.is_empty(), "panicked: {panicked:?}");
}
