//! Whole-network cases: a training step (forward, Dice + cross-entropy, backward, optimizer step) and
//! inference of MONAI's BasicUNet and SwinUNETR on a `(1, 1, 64, 64, 64)` patch, as
//! `torch_baseline.py` times them; and the same for the Mamba U-Nets (U-Mamba's UMambaBot on nnU-Net's
//! plan for a 64³ patch at 1 mm, SegMamba with feature size 24), which have no CPU PyTorch counterpart:
//! mamba_ssm runs on CUDA only. On a GPU the networks are moved there whole before the clock starts,
//! and [`allocator_cases`] repeat two steps without the caching allocator.

use seg_losses::{DiceCELoss, DiceLoss};
use seg_models::{
    BasicUNet, BasicUNetConfig, SegMamba, SegMambaConfig, SwinUNETR, SwinUNETRConfig, UMamba, UMambaVariant,
};
use seg_nn::optim::{Adam, Optimizer, ParamGrads, Sgd};
use seg_nn::{to_device, Module};
use seg_tensor::{memory, no_grad, DType, Device, Result, Tensor};

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

/// The input patch and random labels in `0..3`, on `device`.
fn batch(device: Device) -> Result<(Tensor, Tensor)> {
    let x = Tensor::randn(&[1, 1, 64, 64, 64], 1, DType::F32)?;
    let labels = Tensor::rand(&[1, 1, 64, 64, 64], 2, DType::F32)?
        .mul_scalar(3.0)?
        .to_dtype(DType::I64)?
        .to_dtype(DType::F32)?;
    Ok((x.to_device(device)?, labels.to_device(device)?))
}

/// The network of `make` with its parameters on `device`.
fn network_on<N: Network>(make: fn() -> Result<N>, device: Device) -> Result<N> {
    let mut net = make()?;
    to_device(&mut net, device)?;
    Ok(net)
}

/// One training step: forward, Dice + cross-entropy, backward, the optimizer's step. With
/// `release_threshold`, the caching allocator of the GPU keeps at most that many freed bytes at a
/// synchronisation (the suite sets it back afterwards).
fn train_step_case<N: Network + 'static>(
    name: &str,
    make: fn() -> Result<N>,
    optimizer: fn() -> Box<dyn Optimizer>,
    release_threshold: Option<u64>,
) -> Case {
    Case::new(
        name,
        None,
        Box::new(move |device| {
            if let (Some(bytes), Device::Cuda(ordinal)) = (release_threshold, device) {
                memory::set_cuda_release_threshold(ordinal, bytes)?;
            }
            let mut net = network_on(make, device)?;
            let mut opt = optimizer();
            let (x, labels) = batch(device)?;
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
    )
}

fn infer_case<N: Network + 'static>(name: &str, make: fn() -> Result<N>) -> Case {
    Case::new(
        name,
        None,
        Box::new(move |device| {
            let net = network_on(make, device)?;
            let (x, _) = batch(device)?;
            Ok(Box::new(move || no_grad(|| net.logits(&x).map(drop))) as Body)
        }),
    )
}

fn nnunet_sgd() -> Box<dyn Optimizer> {
    Box::new(Sgd::with_momentum(1e-2, 0.99, true))
}

fn adamw() -> Box<dyn Optimizer> {
    Box::new(Adam::adamw(1e-4))
}

/// The caching allocator's effect on a GPU: the U-Net and Swin UNETR train steps with the memory
/// pool's release threshold at 0 (every freed block handed back to the driver at each
/// synchronisation, as without a caching allocator), beside the suite's cached steps.
pub fn allocator_cases() -> Vec<Case> {
    vec![
        train_step_case("unet_train_step_64_uncached", unet, nnunet_sgd, Some(0)),
        train_step_case("swin_unetr_train_step_64_uncached", swin_unetr, adamw, Some(0)),
    ]
}

/// The suite's network cases.
pub fn model_cases() -> Vec<Case> {
    vec![
        train_step_case("unet_train_step_64", unet, nnunet_sgd, None),
        infer_case("unet_infer_64", unet),
        train_step_case("swin_unetr_train_step_64", swin_unetr, adamw, None),
        infer_case("swin_unetr_infer_64", swin_unetr),
        train_step_case("umamba_bot_train_step_64", umamba_bot, nnunet_sgd, None),
        infer_case("umamba_bot_infer_64", umamba_bot),
        train_step_case("segmamba_train_step_64", segmamba, adamw, None),
        infer_case("segmamba_infer_64", segmamba),
    ]
}
