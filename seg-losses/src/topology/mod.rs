//! Topology: Betti numbers, cubical persistent homology and the topology-preserving loss.

mod betti;
mod grid;
mod loss;
mod persistence;

pub use betti::{betti_numbers, betti_of, binary_mask, euler_characteristic};
pub use loss::{topology_loss, TopologyTargets};
pub use persistence::{persistence_diagram, persistence_of, PersistenceDiagram, PersistencePair};
