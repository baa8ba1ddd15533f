//! Topology: Betti numbers, cubical persistent homology and the topology-preserving loss.
