use std::sync::Arc;

use seg_tensor::{checkpoint, CheckpointFn, Result, Tensor};

use super::Layer;
use crate::Module;

/// A layer run under gradient checkpointing ([`seg_tensor::checkpoint`]): its intermediate
/// activations are dropped after the forward and recomputed in the backward. Same parameters and
/// names as the layer; the layer must compute the same thing twice (no dropout in training).
#[derive(Clone, Debug)]
pub struct Checkpointed<L> {
    inner: Arc<L>,
}

impl<L: Layer + Clone + 'static> Checkpointed<L> {
    pub fn new(layer: L) -> Self {
        Self { inner: Arc::new(layer) }
    }

    pub fn inner(&self) -> &L {
        &self.inner
    }
}

impl<L: Layer + Clone + 'static> Module for Checkpointed<L> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        self.inner.visit(f);
    }

    /// A graph still waiting for its backward holds the layer as it was; changing the parameters
    /// then makes a new copy of the layer (its parameters are shared handles, so this is cheap).
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        Arc::make_mut(&mut self.inner).visit_mut(f);
    }

    fn visit_aliases(&self, f: &mut dyn FnMut(&str, &str)) {
        self.inner.visit_aliases(f);
    }

    fn set_training(&mut self, training: bool) {
        Arc::make_mut(&mut self.inner).set_training(training);
    }
}

impl<L: Layer + Clone + 'static> Layer for Checkpointed<L> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let inner = self.inner.clone();
        let f: CheckpointFn = Arc::new(move |x| inner.forward(x));
        let params: Vec<Tensor> = self
            .named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .filter(Tensor::tracks_grad)
            .collect();
        checkpoint(f, x, &params)
    }
}
