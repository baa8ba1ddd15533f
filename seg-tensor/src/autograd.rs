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

impl Drop for Node {
    /// Frees the chain of inputs with a loop instead of recursion, so that dropping a graph
    /// millions of ops deep cannot overflow the stack.
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.inputs);
        while let Some(input) = pending.pop() {
            if let Some(mut node) = input.and_then(Arc::into_inner) {
                pending.append(&mut node.inputs);
            }
        }
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
    with_grad_enabled(false, f)
}

/// Runs `f` with recording switched on or off, restoring the previous state after.
pub(crate) fn with_grad_enabled<R>(enabled: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GRAD_ENABLED.with(|g| g.replace(enabled)));
    f()
}

/// The gradients of the leaves that a `backward()` reached, keyed by tensor.
#[derive(Default, Debug)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    fn leaf(values: &[f64]) -> Tensor {
        Tensor::from_slice(values, &[values.len()]).unwrap().requires_grad()
    }

    #[test]
    fn tensors_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Tensor>();
        assert_send_sync::<Gradients>();
    }

    #[test]
    fn a_tensor_used_twice_gets_the_sum_of_both_gradients() {
        let x = leaf(&[1.0, -2.0, 3.0]);
        // y = sum(x * x + 3 x) -> dy/dx = 2x + 3
        let y = x
            .mul(&x)
            .unwrap()
            .add(&x.mul_scalar(3.0).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let g = y.backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![5.0, -1.0, 9.0]);
    }

    #[test]
    fn no_grad_records_nothing_and_detach_cuts_the_graph() {
        let x = leaf(&[1.0, 2.0]);
        assert!(!no_grad(|| x.exp().unwrap()).tracks_grad());
        assert!(is_grad_enabled());
        assert!(!x.detach().tracks_grad());
        // Through a detached branch no gradient flows: d/dx (x * detach(x)) = detach(x).
        let y = x.mul(&x.detach()).unwrap().sum_all().unwrap();
        assert_eq!(
            y.backward().unwrap().get(&x).unwrap().to_vec::<f64>().unwrap(),
            vec![1.0, 2.0]
        );
    }

    #[test]
    fn backward_errors_instead_of_panicking() {
        let plain = Tensor::ones(&[1], DType::F32);
        assert!(matches!(plain.backward(), Err(Error::Backward(_))));
        let x = leaf(&[1.0, 2.0]);
        let y = x.exp().unwrap();
        assert!(
            matches!(y.backward(), Err(Error::ShapeMismatch { .. })),
            "a non-scalar needs backward_with"
        );
        let s = y.sum_all().unwrap();
        s.backward().unwrap();
        let again = s.backward();
        assert!(
            matches!(again, Err(Error::Backward(ref m)) if m.contains("already")),
            "{again:?}"
        );
    }

    #[test]
    fn backward_with_an_upstream_gradient() {
        let x = leaf(&[1.0, 2.0, 3.0]);
        let y = x.mul_scalar(2.0).unwrap();
        let g = y
            .backward_with(&Tensor::from_slice(&[1.0, 10.0, 100.0], &[3]).unwrap())
            .unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![2.0, 20.0, 200.0]);
    }

    #[test]
    fn a_very_deep_graph_does_not_overflow_the_stack() {
        let x = leaf(&[0.5]);
        let mut y = x.clone();
        for _ in 0..200_000 {
            y = y.mul_scalar(1.0).unwrap();
        }
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![1.0]);
    }
}
