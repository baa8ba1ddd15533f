//! Shapes, strides and offsets: how a tensor's elements sit in its storage.

use crate::{Error, Result};

/// Row-major (C-order) strides of a dense tensor of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Number of elements of `shape` (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Turns a possibly negative dimension into an index below `rank`, as PyTorch does.
pub fn normalize_dim(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    let d = if dim < 0 { dim + rank as isize } else { dim };
    if d < 0 || d >= rank as isize {
        return Err(Error::DimOutOfRange { op, dim, rank });
    }
    Ok(d as usize)
}

/// Normalises a set of dimensions, rejecting repeats.
pub fn normalize_dims(op: &'static str, dims: &[isize], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let d = normalize_dim(op, d, rank)?;
        if out.contains(&d) {
            return Err(Error::invalid(
                op,
                format!("dimension {d} appears more than once in {dims:?}"),
            ));
        }
        out.push(d);
    }
    Ok(out)
}

/// The shape two shapes broadcast to under NumPy's rules.
pub fn broadcast_shape(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Result<Vec<usize>> {
    let rank = lhs.len().max(rhs.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let l = if i < rank - lhs.len() {
            1
        } else {
            lhs[i - (rank - lhs.len())]
        };
        let r = if i < rank - rhs.len() {
            1
        } else {
            rhs[i - (rank - rhs.len())]
        };
        out[i] = match (l, r) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => {
                return Err(Error::Broadcast {
                    op,
                    lhs: lhs.to_vec(),
                    rhs: rhs.to_vec(),
                })
            }
        };
    }
    Ok(out)
}

/// Shape, strides (in elements) and offset of a tensor view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A dense row-major layout at offset 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        Self {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    pub fn new(shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Self {
        debug_assert_eq!(shape.len(), strides.len());
        Self { shape, strides, offset }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Whether the elements are dense and in row-major order (size-1 axes may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&size, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if size != 1 && stride != expected {
                return false;
            }
            expected *= size;
        }
        true
    }

    /// The layout seen with its axes reordered: axis `i` of the result is axis `dims[i]` here.
    pub fn permute(&self, dims: &[usize]) -> Self {
        Self {
            shape: dims.iter().map(|&d| self.shape[d]).collect(),
            strides: dims.iter().map(|&d| self.strides[d]).collect(),
            offset: self.offset,
        }
    }

    /// The layout broadcast (with stride 0) to `shape`, which must be a valid broadcast target.
    pub fn broadcast_to(&self, shape: &[usize]) -> Self {
        let pad = shape.len() - self.rank();
        let strides = (0..shape.len())
            .map(|i| {
                if i < pad || self.shape[i - pad] == 1 && shape[i] != 1 {
                    0
                } else {
                    self.strides[i - pad]
                }
            })
            .collect();
        Self {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        }
    }

    /// Storage offsets of all elements, in row-major order of the view.
    pub fn offsets(&self) -> StridedOffsets<'_> {
        StridedOffsets::new(self)
    }
}

/// Iterator over the storage offsets of a strided view, in row-major order.
pub struct StridedOffsets<'a> {
    layout: &'a Layout,
    index: Vec<usize>,
    next: usize,
    remaining: usize,
}

impl<'a> StridedOffsets<'a> {
    fn new(layout: &'a Layout) -> Self {
        Self {
            layout,
            index: vec![0; layout.rank()],
            next: layout.offset,
            remaining: layout.numel(),
        }
    }
}

impl Iterator for StridedOffsets<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let current = self.next;
        let (shape, strides) = (&self.layout.shape, &self.layout.strides);
        for d in (0..shape.len()).rev() {
            self.index[d] += 1;
            self.next += strides[d];
            if self.index[d] < shape[d] {
                break;
            }
            self.next -= strides[d] * shape[d];
            self.index[d] = 0;
        }
        Some(current)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for StridedOffsets<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast_shape("t", &[2, 1, 4, 5], &[3, 1, 5]).unwrap(),
            vec![2, 3, 4, 5]
        );
        assert_eq!(broadcast_shape("t", &[], &[3]).unwrap(), vec![3]);
        assert!(broadcast_shape("t", &[2, 3], &[4, 3]).is_err());
    }

    #[test]
    fn offsets_walk_a_transposed_view() {
        let l = Layout::contiguous(&[2, 3]).permute(&[1, 0]);
        assert_eq!(l.offsets().collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
        assert!(!l.is_contiguous());
        assert!(Layout::contiguous(&[2, 1, 3]).permute(&[1, 0, 2]).is_contiguous());
    }

    #[test]
    fn negative_dims_count_from_the_end() {
        assert_eq!(normalize_dim("t", -1, 3).unwrap(), 2);
        assert!(normalize_dim("t", 3, 3).is_err());
        assert!(normalize_dims("t", &[1, -2], 3).is_err());
    }
}
