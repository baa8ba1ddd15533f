//! The topology-preserving loss of Hu et al. 2019 ("Topology-Preserving Deep Image Segmentation").
//!
//! For a predicted probability map `p` and a binary ground truth `g`, take the sublevel persistence
//! diagram of `f = 1 - p` ([`super::persistence_of`]: foreground components are born where `p` is
//! high, i.e. `f` low) and the ground truth's Betti numbers `beta_k` ([`super::betti_of`]). The ground
//! truth's own diagram is `beta_k` dots at `(0, 1)`. Per homology dimension `k` (H0 and H1 in 2D, H0
//! in 3D), the `beta_k` most persistent dots `(b, d)` are matched to `(0, 1)` and every other dot to
//! its nearest point of the diagonal, so that
//!
//! `L = sum_k [ sum_{matched} (b^2 + (d - 1)^2) + sum_{others} (d - b)^2 / 2 ]`,
//!
//! where `b = f(birth cell) = 1 - p(birth cell)` and `d = 1 - p(death cell)`; an essential class
//! (infinite death) has `d` held at 1, the largest value `f` takes. The loss is a function of `p` at
//! the critical cells only: it is built as a gather of `p` at those cells followed by arithmetic, so
//! autodiff sends gradients to them alone (the cells themselves are fixed for the step, as in the
//! paper). Over leading (batch, channel) axes the loss is the mean of the per-map losses.

use seg_tensor::{Error, Result, Tensor};

use super::{betti_of, binary_mask, persistence_of};

/// The critical cells of every dot of the topology loss, as flat indices into `p`, by the term they
/// enter: matched births `(1 - p)^2`, matched finite deaths `p^2`, unmatched finite dots
/// `(p_birth - p_death)^2 / 2`, and unmatched essential births `p^2 / 2`.
#[derive(Debug, Clone, Default)]
pub struct TopologyTargets {
    matched_births: Vec<i64>,
    matched_deaths: Vec<i64>,
    unmatched_births: Vec<i64>,
    unmatched_deaths: Vec<i64>,
    unmatched_essential: Vec<i64>,
    maps: usize,
}

impl TopologyTargets {
    /// Finds the critical cells for probabilities `prob` and a binary `target` of the same shape
    /// `(..., spatial)` with `spatial_dims` (2 or 3) trailing spatial axes; the leading axes index
    /// independent maps.
    pub fn new(prob: &Tensor, target: &Tensor, spatial_dims: usize) -> Result<Self> {
        if !(2..=3).contains(&spatial_dims) || prob.rank() < spatial_dims {
            return Err(Error::invalid(
                "topology_loss",
                format!(
                    "expected 2 or 3 spatial axes within the probability map's shape, found {spatial_dims} for {:?}",
                    prob.shape()
                ),
            ));
        }
        if target.shape() != prob.shape() {
            return Err(Error::ShapeMismatch {
                op: "topology_loss",
                expected: format!("a ground truth of the prediction's shape {:?}", prob.shape()),
                found: target.shape().to_vec(),
            });
        }
        let spatial = &prob.shape()[prob.rank() - spatial_dims..];
        let size: usize = spatial.iter().product();
        let truth = binary_mask("topology_loss", target)?;
        let f: Vec<f64> = prob.to_vec_f64().iter().map(|p| 1.0 - p).collect();
        let mut out = TopologyTargets {
            maps: f.len() / size.max(1),
            ..Default::default()
        };
        for (m, (f, truth)) in f.chunks(size).zip(truth.chunks(size)).enumerate() {
            let betti = betti_of(truth, spatial)?;
            let diagram = persistence_of(f, spatial)?;
            let at = |c: usize| (m * size + c) as i64;
            for (pairs, &beta) in diagram.by_dim.iter().zip(&betti) {
                for (i, pair) in pairs.iter().enumerate() {
                    match (i < beta, pair.death_cell) {
                        (true, death) => {
                            out.matched_births.push(at(pair.birth_cell));
                            out.matched_deaths.extend(death.map(at));
                        }
                        (false, Some(death)) => {
                            out.unmatched_births.push(at(pair.birth_cell));
                            out.unmatched_deaths.push(at(death));
                        }
                        (false, None) => out.unmatched_essential.push(at(pair.birth_cell)),
                    }
                }
            }
        }
        Ok(out)
    }

    /// The loss (module doc) at these critical cells, differentiable in `prob`.
    pub fn loss(&self, prob: &Tensor) -> Result<Tensor> {
        let flat = prob.reshape(&[prob.numel()])?;
        let at = |cells: &[i64]| {
            let index = Tensor::from_vec(cells.to_vec(), &[cells.len()])?.to_device(flat.device())?;
            flat.index_select(0, &index)
        };
        let square_sum = |t: Tensor| t.mul(&t)?.sum_all();
        let births = at(&self.matched_births)?.neg()?.add_scalar(1.0)?;
        let unmatched = at(&self.unmatched_births)?.sub(&at(&self.unmatched_deaths)?)?;
        let total = square_sum(births)?
            .add(&square_sum(at(&self.matched_deaths)?)?)?
            .add(&square_sum(unmatched)?.mul_scalar(0.5)?)?
            .add(&square_sum(at(&self.unmatched_essential)?)?.mul_scalar(0.5)?)?;
        total.mul_scalar(1.0 / self.maps.max(1) as f64)
    }
}

/// The topology loss of Hu et al. 2019 (module doc) of probabilities `prob` against a binary `target`
/// of the same shape, with `spatial_dims` (2 or 3) trailing spatial axes: the mean over the leading
/// axes' maps. Returns a scalar that differentiates into `prob` at the critical cells.
pub fn topology_loss(prob: &Tensor, target: &Tensor, spatial_dims: usize) -> Result<Tensor> {
    if !prob.dtype().is_float() {
        return Err(Error::invalid(
            "topology_loss",
            format!("expected float probabilities, found {:?}", prob.dtype()),
        ));
    }
    crate::prepare::expect_finite("topology_loss", prob, target)?;
    TopologyTargets::new(prob, target, spatial_dims)?.loss(prob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use seg_tensor::{gradcheck, DType};

    fn disk_2d(h: usize, w: usize) -> Vec<f64> {
        (0..h * w)
            .map(|i| {
                let (y, x) = ((i / w) as f64 - 2.5, (i % w) as f64 - 2.5);
                f64::from(y * y + x * x < 5.0)
            })
            .collect()
    }

    #[test]
    fn the_truth_itself_costs_nothing() {
        let mut ring = disk_2d(6, 6);
        ring[2 * 6 + 2] = 0.0;
        let t = Tensor::from_vec(ring, &[1, 6, 6]).unwrap();
        assert_eq!(topology_loss(&t, &t, 2).unwrap().item().unwrap(), 0.0);
    }

    #[test]
    fn an_extra_component_costs_its_persistence() {
        // Truth: one blob. Prediction: the blob at 0.9 plus a spurious dot at 0.7 in a corner.
        let truth = disk_2d(6, 8);
        let mut p: Vec<f64> = truth.iter().map(|t| 0.9 * t).collect();
        p[7] = 0.7;
        let (p, t) = (
            Tensor::from_vec(p, &[6, 8]).unwrap(),
            Tensor::from_vec(truth, &[6, 8]).unwrap(),
        );
        // Matched essential: b = 0.1 -> 0.01; the dot (0.3, 1.0) to the diagonal: 0.49 / 2.
        let loss = topology_loss(&p, &t, 2).unwrap().item().unwrap();
        assert!((loss - (0.01 + 0.245)).abs() < 1e-12, "{loss}");
    }

    #[test]
    fn gradient_matches_finite_differences_with_the_cells_held() {
        // Two 2D maps, and one 3D map.
        for (shape, spatial_dims, seed) in [(vec![2, 5, 6], 2, 1u64), (vec![3, 4, 3], 3, 2)] {
            let p = Tensor::rand(&shape, seed, DType::F64).unwrap();
            let truth: Vec<f64> = p.to_vec_f64().iter().map(|v| f64::from(*v > 0.6)).collect();
            let t = Tensor::from_vec(truth, &shape).unwrap();
            let targets = TopologyTargets::new(&p, &t, spatial_dims).unwrap();
            gradcheck::check(|x| targets.loss(&x[0]), std::slice::from_ref(&p)).unwrap();
            assert!(topology_loss(&p, &t, spatial_dims).unwrap().item().unwrap() > 0.0);
        }
    }

    #[test]
    fn gradients_reach_critical_cells_only() {
        let p = Tensor::rand(&[7, 7], 3, DType::F64).unwrap().requires_grad();
        let t = Tensor::from_vec(disk_2d(7, 7), &[7, 7]).unwrap();
        let targets = TopologyTargets::new(&p, &t, 2).unwrap();
        let grads = targets.loss(&p).unwrap().backward().unwrap();
        let nonzero = grads
            .get(&p)
            .unwrap()
            .to_vec_f64()
            .iter()
            .filter(|g| **g != 0.0)
            .count();
        let cells = targets.matched_births.len()
            + targets.matched_deaths.len()
            + targets.unmatched_births.len()
            + targets.unmatched_deaths.len()
            + targets.unmatched_essential.len();
        assert!(nonzero > 0 && nonzero <= cells);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let p = Tensor::rand(&[4, 4], 0, DType::F32).unwrap();
        assert!(topology_loss(&p, &p, 2).unwrap_err().to_string().contains("binary"));
        let t = Tensor::zeros(&[4, 4], DType::F32);
        assert!(topology_loss(&p, &t, 4).is_err());
        assert!(topology_loss(&p, &Tensor::zeros(&[4, 5], DType::F32), 2).is_err());
        let nan = Tensor::full(&[4, 4], f64::NAN, DType::F32);
        let msg = topology_loss(&nan, &t, 2).unwrap_err().to_string();
        assert!(msg.contains("topology_loss") && msg.contains("NaN"), "{msg}");
    }
}
