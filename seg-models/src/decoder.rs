//! nnU-Net's decoder walk, shared by [`crate::PlainConvUNet`] and [`crate::UMamba`].

use seg_tensor::{Result, Tensor};

/// The layers of one decoder stage `s` (deepest first), as functions of `s`.
pub(crate) struct DecoderStages<Up, Stage, Head> {
    /// Upsamples the stage's input to its skip's resolution.
    pub up: Up,
    /// The stage's blocks, on `cat(up(y), skip)`.
    pub stage: Stage,
    /// The 1x1 segmentation head.
    pub head: Head,
}

impl<Up, Stage, Head> DecoderStages<Up, Stage, Head>
where
    Up: Fn(usize, &Tensor) -> Result<Tensor>,
    Stage: Fn(usize, &Tensor) -> Result<Tensor>,
    Head: Fn(usize, &Tensor) -> Result<Tensor>,
{
    /// From the bottleneck output `y`, stage `s` computes `y = stage(s, cat(up(s, y), skip))` with
    /// `skips` taken deepest first (the bottleneck's own output is not among them). The head runs on
    /// the last stage and, with `deep_supervision`, on every stage. Logits at full resolution first.
    pub fn run(&self, mut y: Tensor, mut skips: Vec<Tensor>, deep_supervision: bool) -> Result<Vec<Tensor>> {
        let stages = skips.len();
        let mut outputs = Vec::new();
        for s in 0..stages {
            let skip = skips.pop().expect("one skip per decoder stage");
            y = (self.stage)(s, &Tensor::cat(&[&(self.up)(s, &y)?, &skip], 1)?)?;
            if deep_supervision || s + 1 == stages {
                outputs.push((self.head)(s, &y)?);
            }
        }
        outputs.reverse();
        Ok(outputs)
    }
}
