//! Fits a tiny two-layer network by gradient descent, with `seg`'s autodiff.
//!
//!     cargo run --release --example autodiff

use seg::{no_grad, DType, Result, Tensor};

fn main() -> Result<()> {
    // Data: y = sin(3x) on [-1, 1].
    let x = Tensor::rand_uniform(&[256, 1], -1.0, 1.0, 0, DType::F32)?;
    let y = x
        .mul_scalar(3.0)?
        .to_vec::<f32>()?
        .iter()
        .map(|v| v.sin())
        .collect::<Vec<_>>();
    let y = Tensor::from_vec(y, &[256, 1])?;

    let mut w1 = Tensor::randn(&[32, 1], 1, DType::F32)?.requires_grad();
    let mut b1 = Tensor::zeros(&[32], DType::F32).requires_grad();
    let mut w2 = Tensor::randn(&[1, 32], 2, DType::F32)?.mul_scalar(0.2)?.requires_grad();
    let mut b2 = Tensor::zeros(&[1], DType::F32).requires_grad();

    for step in 0..=500 {
        let pred = x.linear(&w1, Some(&b1))?.tanh()?.linear(&w2, Some(&b2))?;
        let loss = pred.sub(&y)?.powf(2.0)?.mean_all()?;
        let grads = loss.backward()?;
        if step % 100 == 0 {
            println!("step {step:3}  mse {:.5}", loss.item()?);
        }
        // Plain SGD: p <- p - lr * dL/dp, outside the graph, then track gradients again.
        let sgd = |p: &Tensor| -> Result<Tensor> {
            let g = grads.get(p).expect("every parameter gets a gradient");
            Ok(no_grad(|| p.sub(&g.mul_scalar(0.1)?))?.requires_grad())
        };
        (w1, b1, w2, b2) = (sgd(&w1)?, sgd(&b1)?, sgd(&w2)?, sgd(&b2)?);
    }
    Ok(())
}
