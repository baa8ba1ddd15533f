//! The networks `seg train` can train, behind one type, with what a checkpoint records to rebuild
//! them.

use std::collections::BTreeMap;

use seg_models::{
    BasicUNet, BasicUNetConfig, PlainConvUNet, SegMamba, SegMambaConfig, SwinUNETR, SwinUNETRConfig, UMamba,
    UMambaVariant,
};
use seg_nn::Module;

use crate::{Device, Error, Result, Tensor};

/// Which network: `unet` (MONAI's BasicUNet), `plain-unet` (nnU-Net's PlainConvUNet, planned
/// from the patch size and spacing), `swin-unetr` (MONAI's SwinUNETR, feature size 24 by default),
/// `mamba-unet` (U-Mamba's UMambaBot on the same nnU-Net plan) or `segmamba` (SegMamba, its
/// channels scaled from the first feature count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    UNet,
    PlainUNet,
    SwinUNETR,
    MambaUNet,
    SegMamba,
}

impl ModelKind {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "unet" => Ok(Self::UNet),
            "plain-unet" => Ok(Self::PlainUNet),
            "swin-unetr" => Ok(Self::SwinUNETR),
            "mamba-unet" => Ok(Self::MambaUNet),
            "segmamba" => Ok(Self::SegMamba),
            other => Err(Error::invalid(
                "model",
                format!("unknown model {other:?}: expected unet, plain-unet, swin-unetr, mamba-unet or segmamba"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::UNet => "unet",
            Self::PlainUNet => "plain-unet",
            Self::SwinUNETR => "swin-unetr",
            Self::MambaUNet => "mamba-unet",
            Self::SegMamba => "segmamba",
        }
    }
}

/// What builds a network: its kind, channels, the patch it was planned for and the spacing of its
/// data. Written into checkpoints as metadata, so that `seg infer` rebuilds the same network.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub kind: ModelKind,
    pub in_channels: usize,
    pub classes: usize,
    /// BasicUNet's six feature counts; SwinUNETR takes the first as its feature size (a multiple of
    /// 12), SegMamba as its `feat_size[0]` (see [`Model::new`]); the planned U-Nets ignore them.
    pub features: [usize; 6],
    pub patch: [usize; 3],
    pub spacing: [f64; 3],
}

impl ModelSpec {
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let list = |v: &[String]| v.join(",");
        BTreeMap::from([
            ("model".into(), self.kind.name().into()),
            ("in_channels".into(), self.in_channels.to_string()),
            ("classes".into(), self.classes.to_string()),
            ("features".into(), list(&self.features.map(|f| f.to_string()))),
            ("patch".into(), list(&self.patch.map(|f| f.to_string()))),
            ("spacing".into(), list(&self.spacing.map(|f| f.to_string()))),
        ])
    }

    pub fn from_metadata(meta: &BTreeMap<String, String>) -> Result<Self> {
        let get = |key: &str| {
            meta.get(key)
                .ok_or_else(|| Error::invalid("checkpoint", format!("no {key:?} in the checkpoint's metadata")))
        };
        fn parse_list<T: std::str::FromStr, const N: usize>(key: &str, text: &str) -> Result<[T; N]> {
            let values: Vec<T> = text.split(',').filter_map(|v| v.trim().parse().ok()).collect();
            values
                .try_into()
                .map_err(|_| Error::invalid("checkpoint", format!("{key} should be {N} numbers, found {text:?}")))
        }
        let number = |key: &str| -> Result<usize> {
            let text = get(key)?;
            text.parse()
                .map_err(|_| Error::invalid("checkpoint", format!("{key} should be a number, found {text:?}")))
        };
        Ok(Self {
            kind: ModelKind::parse(get("model")?)?,
            in_channels: number("in_channels")?,
            classes: number("classes")?,
            features: parse_list("features", get("features")?)?,
            patch: parse_list("patch", get("patch")?)?,
            spacing: parse_list("spacing", get("spacing")?)?,
        })
    }
}

/// A network `seg train` trains.
pub enum Model {
    UNet(Box<BasicUNet>),
    PlainUNet(Box<PlainConvUNet>),
    SwinUNETR(Box<SwinUNETR>),
    MambaUNet(Box<UMamba>),
    SegMamba(Box<SegMamba>),
}

impl Model {
    pub fn new(spec: &ModelSpec, seed: u64) -> Result<Self> {
        Ok(match spec.kind {
            ModelKind::UNet => {
                let mut config = BasicUNetConfig::new(3, spec.in_channels, spec.classes);
                config.features = spec.features;
                Model::UNet(Box::new(BasicUNet::new(config, seed)?))
            }
            ModelKind::PlainUNet => {
                let plan = seg_models::plan::plan(spec.in_channels, spec.classes, &spec.patch, &spec.spacing, false)?;
                Model::PlainUNet(Box::new(PlainConvUNet::new(plan.config, seed)?))
            }
            ModelKind::MambaUNet => {
                let plan = seg_models::plan::plan(spec.in_channels, spec.classes, &spec.patch, &spec.spacing, false)?;
                Model::MambaUNet(Box::new(UMamba::new(plan.config, UMambaVariant::Bot, seed)?))
            }
            ModelKind::SwinUNETR => {
                let mut config = SwinUNETRConfig::new(spec.in_channels, spec.classes, 3);
                config.feature_size = spec.features[0];
                Model::SwinUNETR(Box::new(SwinUNETR::new(config, seed)?))
            }
            ModelKind::SegMamba => {
                // SegMamba's proportions (48, 96, 192, 384, hidden 768) from `f`, one slice per
                // axial plane of each map.
                let f = spec.features[0];
                let mut config = SegMambaConfig::for_patch(spec.in_channels, spec.classes, &spec.patch);
                config.feat_size = [f, 2 * f, 4 * f, 8 * f];
                config.hidden_size = 16 * f;
                Model::SegMamba(Box::new(SegMamba::new(config, seed)?))
            }
        })
    }

    /// Logits `(N, classes, D, H, W)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Model::UNet(net) => net.forward(x),
            Model::PlainUNet(net) => first(net.forward(x)?),
            Model::MambaUNet(net) => first(net.forward(x)?),
            Model::SwinUNETR(net) => net.forward(x),
            Model::SegMamba(net) => net.forward(x),
        }
    }

    /// The device of the parameters (the CPU for a network without any).
    pub fn device(&self) -> Device {
        let mut device = Device::Cpu;
        self.module().visit(&mut |_, t| device = t.device());
        device
    }

    /// Moves every parameter and buffer to `device`.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        seg_nn::to_device(self.module_mut(), device)
    }

    pub fn module(&self) -> &dyn Module {
        match self {
            Model::UNet(net) => net.as_ref(),
            Model::PlainUNet(net) => net.as_ref(),
            Model::SwinUNETR(net) => net.as_ref(),
            Model::MambaUNet(net) => net.as_ref(),
            Model::SegMamba(net) => net.as_ref(),
        }
    }

    pub fn module_mut(&mut self) -> &mut dyn Module {
        match self {
            Model::UNet(net) => net.as_mut(),
            Model::PlainUNet(net) => net.as_mut(),
            Model::SwinUNETR(net) => net.as_mut(),
            Model::MambaUNet(net) => net.as_mut(),
            Model::SegMamba(net) => net.as_mut(),
        }
    }
}

/// The full-resolution output of a network with deep-supervision outputs.
fn first(outputs: Vec<Tensor>) -> Result<Tensor> {
    outputs
        .into_iter()
        .next()
        .ok_or_else(|| Error::invalid("model", "the network gave no output"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn segmamba_builds_for_the_patch_and_round_trips_its_spec() {
        let spec = ModelSpec {
            kind: ModelKind::parse("segmamba").unwrap(),
            in_channels: 1,
            classes: 3,
            features: [2; 6],
            patch: [16, 32, 16],
            spacing: [1.5; 3],
        };
        assert_eq!(ModelSpec::from_metadata(&spec.to_metadata()).unwrap(), spec);
        let model = Model::new(&spec, 0).unwrap();
        let names: Vec<String> = model.module().named_parameters().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"vit.stages.3.1.mamba.A_s_log".to_string()));
        // Slices per stage: the depths 8, 4, 2, 1 of the maps of a 16-deep patch.
        let y = model.forward(&Tensor::zeros(&[1, 1, 16, 32, 16], DType::F32)).unwrap();
        assert_eq!(y.shape(), &[1, 3, 16, 32, 16]);
    }
}
