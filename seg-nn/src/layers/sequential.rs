use seg_tensor::{Result, Tensor};

use super::Layer;
use crate::module::{visit_child, visit_child_aliases, visit_child_mut};
use crate::Module;

/// `nn.Sequential`: layers applied in order; the `i`-th layer's parameters are named `i.<name>`.
#[derive(Default)]
pub struct Sequential {
    pub layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    pub fn new(layers: Vec<Box<dyn Layer>>) -> Self {
        Self { layers }
    }
}

impl Module for Sequential {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        for (i, layer) in self.layers.iter().enumerate() {
            visit_child(&i.to_string(), layer.as_ref(), f);
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor)) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            visit_child_mut(&i.to_string(), layer.as_mut(), f);
        }
    }

    fn visit_aliases(&self, f: &mut dyn FnMut(&str, &str)) {
        for (i, layer) in self.layers.iter().enumerate() {
            visit_child_aliases(&i.to_string(), layer.as_ref(), f);
        }
    }

    fn set_training(&mut self, training: bool) {
        for layer in &mut self.layers {
            layer.set_training(training);
        }
    }
}

impl Layer for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.layers.iter().try_fold(x.clone(), |x, layer| layer.forward(&x))
    }
}
