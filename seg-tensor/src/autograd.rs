//! Define-by-run reverse-mode automatic differentiation.
//!
//! Every op that produces a tensor from inputs that track gradients records a [`Node`] holding the
//! input nodes and a [`Backward`]: what the op saved to compute its input gradients. `backward()`
//! sorts the graph once, walks it from the output to the leaves, and hands each node's gradient to its
//! `Backward`, which is consumed by the call, so the tensors it saved are freed as soon as its backward
//! has run. Gradients of a tensor used more than once are summed.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::{Error, Result, Tensor, TensorId};

/// The backward of one recorded op: input gradients from the output gradient.
pub trait Backward: Send + Sync {
    /// Returns one entry per input of the op (in the order given when it was recorded): the gradient
    /// with respect to that input, or `None` where the input gets none (a mask, an index).
    fn backward(self: Box<Self>, grad: &Tensor) -> Result<Vec<Option<Tensor>>>;
}

/// A vertex of the autodiff graph: a tensor that tracks gradients.
pub(crate) struct Node {
    id: TensorId,
    shape: Vec<usize>,
    inputs: Vec<Option<Arc<Node>>>,
    backward: Mutex<Option<Box<dyn Backward>>>,
}

impl Node {
    pub(crate) fn leaf(id: TensorId, shape: &[usize]) -> Self {
        Self {
            id,
            shape: shape.to_vec(),
            inputs: Vec::new(),
            backward: Mutex::new(None),
        }
    }

    pub(crate) fn op(
        id: TensorId,
        shape: &[usize],
        inputs: Vec<Option<Arc<Node>>>,
        backward: Box<dyn Backward>,
    ) -> Self {
        Self {
            id,
            shape: shape.to_vec(),
            inputs,
            backward: Mutex::new(Some(backward)),
        }
    }

    fn is_leaf(&self) -> bool {
        self.inputs.is_empty()
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread record the autodiff graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Runs `f` without recording the autodiff graph (PyTorch's `torch.no_grad()`).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GRAD_ENABLED.with(|g| g.replace(false)));
    f()
}

/// The gradients of the leaves that a `backward()` reached, keyed by tensor.
#[derive(Default)]
pub struct Gradients(HashMap<TensorId, Tensor>);

impl Gradients {
    /// The gradient of `tensor`, if the backward reached it.
    pub fn get(&self, tensor: &Tensor) -> Option<&Tensor> {
        self.0.get(&tensor.id())
    }

    /// Takes the gradient of `tensor` out.
    pub fn remove(&mut self, tensor: &Tensor) -> Option<Tensor> {
        self.0.remove(&tensor.id())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Nodes reachable from `root`, each after all nodes that consume it (reverse topological order).
fn sorted_from(root: &Arc<Node>) -> Vec<Arc<Node>> {
    let mut post_order = Vec::new();
    let mut visited = HashSet::new();
    let mut stack: Vec<(Arc<Node>, bool)> = vec![(root.clone(), false)];
    while let Some((node, inputs_done)) = stack.pop() {
        if inputs_done {
            post_order.push(node);
            continue;
        }
        if !visited.insert(node.id) {
            continue;
        }
        stack.push((node.clone(), true));
        for input in node.inputs.iter().flatten() {
            if !visited.contains(&input.id) {
                stack.push((input.clone(), false));
            }
        }
    }
    post_order.reverse();
    post_order
}

pub(crate) fn run_backward(root: &Arc<Node>, grad: Tensor) -> Result<Gradients> {
    no_grad(|| {
        let mut pending: HashMap<TensorId, Tensor> = HashMap::from([(root.id, grad)]);
        let mut leaves = Gradients::default();
        for node in sorted_from(root) {
            let Some(grad) = pending.remove(&node.id) else {
                continue;
            };
            if node.is_leaf() {
                leaves.0.insert(node.id, grad);
                continue;
            }
            let backward = node
                .backward
                .lock()
                .expect("autodiff node lock poisoned")
                .take()
                .ok_or_else(|| {
                    Error::Backward("this graph was already differentiated once; run the forward again".into())
                })?;
            let input_grads = backward.backward(&grad)?;
            drop(grad);
            if input_grads.len() != node.inputs.len() {
                return Err(Error::Backward(format!(
                    "an op returned {} gradients for {} inputs",
                    input_grads.len(),
                    node.inputs.len()
                )));
            }
            for (input, g) in node.inputs.iter().zip(input_grads) {
                let (Some(input), Some(g)) = (input, g) else {
                    continue;
                };
                if g.shape() != input.shape.as_slice() {
                    return Err(Error::Backward(format!(
                        "gradient of shape {:?} for an input of shape {:?}",
                        g.shape(),
                        input.shape
                    )));
                }
                let sum = match pending.remove(&input.id) {
                    Some(previous) => previous.add(&g)?,
                    None => g,
                };
                pending.insert(input.id, sum);
            }
        }
        Ok(leaves)
    })
}
