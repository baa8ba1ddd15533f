//! The topology loss drives a probability map toward the ground truth's topology.
//!
//! Plain projected gradient descent on the probabilities themselves, `p <- clamp(p - lr * dL/dp, 0, 1)`
//! with `L = topology_loss(p, truth)` alone (no Dice or cross-entropy term), on smooth synthetic maps:
//!
//! - a disk plus a fainter, separate spurious blob, where the truth is the disk alone: the blob's
//!   H0 dot is unmatched, so its birth cell (the blob's current maximum) is pushed down each step,
//!   and the blob sinks below 0.5 a few pixels at a time;
//! - a ring with a gap, where the truth is the closed ring: the matched H1 dot's birth cell (the
//!   gap pixel that closes the hole) is pushed up each step, until the gap is bridged at 0.5.
//!
//! Each test checks that the Betti error of `p > 0.5` against the truth is nonzero at the start,
//! reaches 0, and that the loss falls. The gradient touches only the critical cells (a birth and a
//! death pixel per dot), so each step changes a few pixels and the number of steps grows with the
//! number of pixels to flip: the blob (9 pixels above 0.5) is gone after 15 steps at `lr = 0.25`, the
//! ring's 4-pixel-wide gap is bridged after 5 (`--nocapture` prints them); both tests run 60. An
//! unmatched dot is moved toward the diagonal from both ends, so besides sinking the blob the descent
//! raises a one-pixel path from the disk toward it (to about 0.3 here, below the 0.5 threshold): the
//! loss may remove a spurious component or merge it, and the first test checks that here it removed it.

use seg_losses::topology::{betti_of, topology_loss};
use seg_tensor::Tensor;

/// A smooth bump `peak * exp(-d^2 / (2 sigma^2))` of the distance `d` to a shape.
fn bump(d: f64, peak: f64, sigma: f64) -> f64 {
    peak * (-d * d / (2.0 * sigma * sigma)).exp()
}

/// `p > 0.5` as a mask, and the Betti numbers of it.
fn betti_above_half(p: &[f64], shape: &[usize]) -> Vec<usize> {
    let mask: Vec<bool> = p.iter().map(|&v| v > 0.5).collect();
    betti_of(&mask, shape).unwrap()
}

fn betti_error(p: &[f64], truth: &[f64], shape: &[usize]) -> usize {
    let t: Vec<bool> = truth.iter().map(|&v| v == 1.0).collect();
    let truth_betti = betti_of(&t, shape).unwrap();
    betti_above_half(p, shape)
        .iter()
        .zip(&truth_betti)
        .map(|(a, b)| a.abs_diff(*b))
        .sum()
}

/// Runs `steps` of projected gradient descent from `p`; returns the map, the first and last losses,
/// and the first step at which the Betti error of `p > 0.5` was 0 (if any).
fn descend(
    mut p: Vec<f64>,
    truth: &[f64],
    shape: &[usize],
    lr: f64,
    steps: usize,
) -> (Vec<f64>, f64, f64, Option<usize>) {
    let t = Tensor::from_vec(truth.to_vec(), shape).unwrap();
    let (mut first, mut last, mut solved) = (f64::NAN, f64::NAN, None);
    for step in 0..=steps {
        if solved.is_none() && betti_error(&p, truth, shape) == 0 {
            solved = Some(step);
        }
        let x = Tensor::from_vec(p.clone(), shape).unwrap().requires_grad();
        let loss = topology_loss(&x, &t, 2).unwrap();
        last = loss.item().unwrap();
        if step == 0 {
            first = last;
        }
        if step == steps {
            break;
        }
        let grad = loss.backward().unwrap().get(&x).unwrap().to_vec_f64();
        for (v, g) in p.iter_mut().zip(grad) {
            *v = (*v - lr * g).clamp(0.0, 1.0);
        }
    }
    (p, first, last, solved)
}

#[test]
fn descent_removes_a_spurious_component() {
    let (h, w) = (32usize, 32usize);
    let centre = |i: usize, cy: f64, cx: f64| ((i / w) as f64 - cy).hypot((i % w) as f64 - cx);
    // Truth: a disk of radius 5 at (9, 9). Prediction: a soft version of it (peak 0.95), plus a
    // separate blob at (18, 18) with peak 0.8, over a 0.05 background.
    let truth: Vec<f64> = (0..h * w).map(|i| f64::from(centre(i, 10.0, 10.0) <= 5.0)).collect();
    let p: Vec<f64> = (0..h * w)
        .map(|i| {
            let disk = bump((centre(i, 10.0, 10.0) - 4.0).max(0.0), 0.95, 1.5);
            let blob = bump(centre(i, 24.0, 24.0), 0.85, 1.6);
            disk.max(blob).max(0.05)
        })
        .collect();
    let shape = [h, w];
    assert_eq!(
        betti_above_half(&p, &shape),
        vec![2, 0],
        "the start has the extra component"
    );
    let blob_pixels = (0..h * w)
        .filter(|&i| centre(i, 24.0, 24.0) < 4.0 && p[i] > 0.5)
        .count();
    let (p, first, last, solved) = descend(p, &truth, &shape, 0.25, 60);
    println!("spurious blob: {blob_pixels} pixels above 0.5, loss {first:.4} -> {last:.4}, solved at step {solved:?}");
    assert!(last < 0.1 * first, "loss {first} -> {last}");
    assert_eq!(betti_above_half(&p, &shape), vec![1, 0]);
    assert!(solved.is_some());
    // Removed, not merged into the disk: the whole blob is now below 0.5.
    assert!((0..h * w).filter(|&i| centre(i, 24.0, 24.0) < 4.0).all(|i| p[i] <= 0.5));
}

#[test]
fn descent_closes_a_broken_ring() {
    let (h, w) = (24usize, 24usize);
    let polar = |i: usize| {
        let (y, x) = ((i / w) as f64 - 11.5, (i % w) as f64 - 11.5);
        (y.hypot(x), x.atan2(y))
    };
    // Truth: the closed annulus 5 <= r <= 8. Prediction: a soft ring (peak 0.9 at r = 6.5) whose
    // probability dips to 0.2 in a gap about two pixels wide around angle 0 (the +y direction).
    let truth: Vec<f64> = (0..h * w)
        .map(|i| f64::from((5.0..=8.0).contains(&polar(i).0)))
        .collect();
    let p: Vec<f64> = (0..h * w)
        .map(|i| {
            let (r, angle) = polar(i);
            let ring = bump(((r - 6.5).abs() - 1.0).max(0.0), 0.9, 0.8);
            let along = angle.abs() * r; // arc length from the gap's centre
            let gap = 1.0 - 0.8 * bump((along - 2.0).max(0.0), 1.0, 0.6);
            (ring * gap).max(0.05)
        })
        .collect();
    let shape = [h, w];
    assert_eq!(betti_above_half(&p, &shape), vec![1, 0], "the start is an open arc");
    let (p, first, last, solved) = descend(p, &truth, &shape, 0.25, 60);
    println!("broken ring: loss {first:.4} -> {last:.4}, solved at step {solved:?}");
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert_eq!(betti_above_half(&p, &shape), vec![1, 1]);
    assert!(solved.is_some());
}
