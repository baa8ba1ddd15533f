//! Whole-network cases: a training step (forward, Dice + cross-entropy, backward, optimizer step) and
//! inference of MONAI's BasicUNet and SwinUNETR on a `(1, 1, 64, 64, 64)` patch, as
//! `torch_baseline.py` times them; and the same for the Mamba U-Nets (U-Mamba's UMambaBot on nnU-Net's
//! plan for a 64³ patch at 1 mm, SegMamba with feature size 24), which have no CPU PyTorch counterpart:
//! mamba_ssm runs on CUDA only.

use seg_losses::{DiceCELoss, DiceLoss};
use seg_models::{
    BasicUNet, BasicUNetConfig, SegMamba, SegMambaConfig, SwinUNETR, SwinUNETRConfig, UMamba, UMambaVariant,
};
use seg_nn::optim::{Adam, Optimizer, ParamGrads, Sgd};
use seg_nn::Module;
use seg_tensor::{no_grad, DType, Result, Tensor};

use crate::{Body, Case};

/// A network the suite times: its forward and its parameters.
trait Network: Module {
    fn logits(&self, x: &Tensor) -> Result<Tensor>;
}

impl Network for BasicUNet {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x)
    }
}

impl Network for SwinUNETR {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x)
    }
}

impl Network for SegMamba {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x)
    }
}

impl Network for UMamba {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let mut outputs = self.forward(x)?;
        Ok(outputs.swap_remove(0))
    }
}

fn unet() -> Result<BasicUNet> {
    let mut config = BasicUNetConfig::new(3, 1, 3);
    config.features = [16, 16, 32, 64, 128, 16];
    BasicUNet::new(config, 0)
}

fn swin_unetr() -> Result<SwinUNETR> {
    SwinUNETR::new(SwinUNETRConfig::new(1, 3, 3), 0)
}

fn umamba_bot() -> Result<UMamba> {
    let plan = seg_models::plan::plan(1, 3, &[64; 3], &[1.0; 3], false)?;
    UMamba::new(plan.config, UMambaVariant::Bot, 0)
}

fn segmamba() -> Result<SegMamba> {
    let mut config = SegMambaConfig::for_patch(1, 3, &[64; 3]);
    config.feat_size = [24, 48, 96, 192];
    config.hidden_size = 384;
    SegMamba::new(config, 0)
}

/// The input patch and random labels in `0..3`.
fn batch() -> Result<(Tensor, Tensor)> {
    let x = Tensor::randn(&[1, 1, 64, 64, 64], 1, DType::F32)?;
    let labels = Tensor::rand(&[1, 1, 64, 64, 64], 2, DType::F32)?
        .mul_scalar(3.0)?
        .to_dtype(DType::I64)?
        .to_dtype(DType::F32)?;
    Ok((x, labels))
}

fn train_step_case<N: Network + 'static>(
    name: &str,
    make: fn() -> Result<N>,
    optimizer: fn() -> Box<dyn Optimizer>,
) -> Case {
    Case {
        name: name.into(),
        gflop: None,
        prepare: Box::new(move || {
            let mut net = make()?;
            let mut opt = optimizer();
            let (x, labels) = batch()?;
            let loss = DiceCELoss {
                dice: DiceLoss {
                    to_onehot_y: true,
                    softmax: true,
                    ..Default::default()
                },
                ..Default::default()
            };
            Ok(Box::new(move || {
                let l = loss.forward(&net.logits(&x)?, &labels)?;
                let grads = ParamGrads::from_backward(&net, &l.backward()?)?;
                opt.step(&mut net, &grads)
            }) as Body)
        }),
    }
}

fn infer_case<N: Network + 'static>(name: &str, make: fn() -> Result<N>) -> Case {
    Case {
        name: name.into(),
        gflop: None,
        prepare: Box::new(move || {
            let net = make()?;
            let (x, _) = batch()?;
            Ok(Box::new(move || no_grad(|| net.logits(&x).map(drop))) as Body)
        }),
    }
}

/// The suite's network cases.
pub fn model_cases() -> Vec<Case> {
    vec![
        train_step_case("unet_train_step_64", unet, || {
            Box::new(Sgd::with_momentum(1e-2, 0.99, true))
        }),
        infer_case("unet_infer_64", unet),
        train_step_case("swin_unetr_train_step_64", swin_unetr, || Box::new(Adam::adamw(1e-4))),
        infer_case("swin_unetr_infer_64", swin_unetr),
        train_step_case("umamba_bot_train_step_64", umamba_bot, || {
            Box::new(Sgd::with_momentum(1e-2, 0.99, true))
        }),
        infer_case("umamba_bot_infer_64", umamba_bot),
        train_step_case("segmamba_train_step_64", segmamba, || Box::new(Adam::adamw(1e-4))),
        infer_case("segmamba_infer_64", segmamba),
    ]
}
