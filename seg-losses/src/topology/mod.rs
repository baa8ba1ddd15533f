//! Topology: Betti numbers, cubical persistent homology and the topology-preserving loss.
//!
//! ```
//! use seg_tensor::{DType, Tensor};
//! use seg_losses::topology::{betti_numbers, persistence_diagram, topology_loss};
//!
//! # fn main() -> seg_tensor::Result<()> {
//! // A ring: one component, one hole.
//! let ring = [1.0f32, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0];
//! let truth = Tensor::from_slice(&ring, &[3, 3])?;
//! assert_eq!(betti_numbers(&truth)?, vec![1, 1]);
//!
//! // Sublevel persistence of f = 1 - p: the essential H0 class is born at the lowest value.
//! let p = Tensor::rand(&[3, 3], 0, DType::F32)?.requires_grad();
//! let diagram = persistence_diagram(&p.neg()?.add_scalar(1.0)?)?;
//! assert!(diagram.by_dim[0][0].death.is_infinite());
//!
//! // The topology loss differentiates into p at the critical cells.
//! let grads = topology_loss(&p, &truth, 2)?.backward()?;
//! assert!(grads.get(&p).is_some());
//! # Ok(())
//! # }
//! ```

mod betti;
mod grid;
mod loss;
mod persistence;

pub use betti::{betti_errors, betti_numbers, betti_of, binary_mask, euler_characteristic};
pub use loss::{topology_loss, TopologyTargets};
pub use persistence::{persistence_diagram, persistence_of, PersistenceDiagram, PersistencePair};
