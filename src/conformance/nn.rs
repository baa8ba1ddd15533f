//! Conformance of seg-nn: the optimizers.

use seg_nn::optim::{Adam, Optimizer, ParamGrads, Sgd};
use seg_nn::Module;

use super::ops::{input, Tensors};
use super::Params;
use crate::{Error, Result, Tensor};

/// One parameter named "param", as the optimizer cases hold it.
struct OneParam(Tensor);

impl Module for OneParam {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("param", &self.0);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f("param", &mut self.0);
    }
}

/// torch.optim's constructor arguments (`name`: sgd, adam, adamw) to an optimizer.
fn optimizer(p: &Params) -> Result<Box<dyn Optimizer>> {
    let lr = p.f64_or("lr", 1e-3)?;
    Ok(match p.str_or("name", "")? {
        "sgd" => {
            let mut sgd = Sgd::with_momentum(lr, p.f64_or("momentum", 0.0)?, p.bool_or("nesterov", false)?);
            sgd.dampening = p.f64_or("dampening", 0.0)?;
            sgd.weight_decay = p.f64_or("weight_decay", 0.0)?;
            Box::new(sgd)
        }
        name @ ("adam" | "adamw") => {
            let mut adam = if name == "adam" { Adam::new(lr) } else { Adam::adamw(lr) };
            if let Some(betas) = super::ops::floats(p, "betas")? {
                let [b1, b2] = betas[..] else {
                    return Err(Error::invalid("conformance", "betas should be two numbers"));
                };
                adam.betas = (b1, b2);
            }
            adam.eps = p.f64_or("eps", adam.eps)?;
            adam.weight_decay = p.f64_or("weight_decay", adam.weight_decay)?;
            Box::new(adam)
        }
        other => return Err(Error::invalid("conformance", format!("unknown optimizer {other:?}"))),
    })
}

/// `optimizer`: `in.param` after one step per `in.grad_<i>`, in order.
pub(super) fn optimizer_steps(p: &Params, inputs: &Tensors) -> Result<Tensor> {
    let mut module = OneParam(input(inputs, "param")?.detach().requires_grad());
    let mut opt = optimizer(p)?;
    for i in 0.. {
        let Some(g) = inputs.get(&format!("grad_{i}")) else {
            break;
        };
        let probe = module.0.mul(g)?.sum_all()?;
        let grads = ParamGrads::from_backward(&module, &probe.backward()?)?;
        opt.step(&mut module, &grads)?;
    }
    Ok(module.0.detach())
}
