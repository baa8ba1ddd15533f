//! NIfTI-1 voxel data types: decoding file bytes to f32 and encoding f32 to file bytes.

use seg_tensor::{Error, Result};

/// A voxel type of NIfTI-1 (`datatype` field), the ones this crate reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NiftiType {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    F32,
    F64,
}

impl NiftiType {
    /// The type of a `datatype` code; an error names the code of any other (complex, RGB, ...).
    pub fn from_code(code: i16, path: &str) -> Result<Self> {
        Ok(match code {
            2 => NiftiType::U8,
            256 => NiftiType::I8,
            4 => NiftiType::I16,
            512 => NiftiType::U16,
            8 => NiftiType::I32,
            768 => NiftiType::U32,
            1024 => NiftiType::I64,
            16 => NiftiType::F32,
            64 => NiftiType::F64,
            _ => {
                return Err(Error::Format {
                    path: path.into(),
                    msg: format!(
                        "unsupported NIfTI datatype {code}; expected one of 2 (uint8), 256 (int8), 4 (int16), \
                         512 (uint16), 8 (int32), 768 (uint32), 1024 (int64), 16 (float32), 64 (float64)"
                    ),
                })
            }
        })
    }

    /// The `datatype` code.
    pub fn code(self) -> i16 {
        match self {
            NiftiType::U8 => 2,
            NiftiType::I8 => 256,
            NiftiType::I16 => 4,
            NiftiType::U16 => 512,
            NiftiType::I32 => 8,
            NiftiType::U32 => 768,
            NiftiType::I64 => 1024,
            NiftiType::F32 => 16,
            NiftiType::F64 => 64,
        }
    }

    /// Bytes per voxel (`bitpix / 8`).
    pub fn size(self) -> usize {
        match self {
            NiftiType::U8 | NiftiType::I8 => 1,
            NiftiType::I16 | NiftiType::U16 => 2,
            NiftiType::I32 | NiftiType::U32 | NiftiType::F32 => 4,
            NiftiType::I64 | NiftiType::F64 => 8,
        }
    }

    /// The inclusive range of whole numbers this type holds, `None` for floating point.
    fn integer_range(self) -> Option<(f64, f64)> {
        match self {
            NiftiType::U8 => Some((0.0, u8::MAX as f64)),
            NiftiType::I8 => Some((i8::MIN as f64, i8::MAX as f64)),
            NiftiType::I16 => Some((i16::MIN as f64, i16::MAX as f64)),
            NiftiType::U16 => Some((0.0, u16::MAX as f64)),
            NiftiType::I32 => Some((i32::MIN as f64, i32::MAX as f64)),
            NiftiType::U32 => Some((0.0, u32::MAX as f64)),
            NiftiType::I64 => Some((i64::MIN as f64, i64::MAX as f64)),
            NiftiType::F32 | NiftiType::F64 => None,
        }
    }
}

/// Runs `$body` with `$t` bound to the Rust type of a [`NiftiType`].
macro_rules! with_type {
    ($kind:expr, $t:ident => $body:expr) => {
        match $kind {
            NiftiType::U8 => {
                type $t = u8;
                $body
            }
            NiftiType::I8 => {
                type $t = i8;
                $body
            }
            NiftiType::I16 => {
                type $t = i16;
                $body
            }
            NiftiType::U16 => {
                type $t = u16;
                $body
            }
            NiftiType::I32 => {
                type $t = i32;
                $body
            }
            NiftiType::U32 => {
                type $t = u32;
                $body
            }
            NiftiType::I64 => {
                type $t = i64;
                $body
            }
            NiftiType::F32 => {
                type $t = f32;
                $body
            }
            NiftiType::F64 => {
                type $t = f64;
                $body
            }
        }
    };
}

/// The voxels of `bytes` (whole voxels of `kind`, little- or big-endian) as f32, scaled by
/// `value = stored * slope + inter` when `scale` is `Some((slope, inter))`.
// `as f32` / `as f64` are the identity for those two of the nine types.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn decode(kind: NiftiType, bytes: &[u8], little_endian: bool, scale: Option<(f64, f64)>) -> Vec<f32> {
    with_type!(kind, T => {
        const N: usize = std::mem::size_of::<T>();
        let read = |c: &[u8]| {
            let raw: [u8; N] = c.try_into().expect("chunks of the type's size");
            if little_endian { T::from_le_bytes(raw) } else { T::from_be_bytes(raw) }
        };
        let chunks = bytes.chunks_exact(N);
        match scale {
            None => chunks.map(|c| read(c) as f32).collect(),
            Some((slope, inter)) => chunks.map(|c| (read(c) as f64 * slope + inter) as f32).collect(),
        }
    })
}

/// `values` as little-endian bytes of `kind`; an integer type takes whole numbers in its range only, and
/// the error names the first value that is not.
pub(crate) fn encode(kind: NiftiType, values: &[f64]) -> Result<Vec<u8>> {
    if let Some((lo, hi)) = kind.integer_range() {
        if let Some((i, v)) = values
            .iter()
            .enumerate()
            .find(|(_, v)| v.fract() != 0.0 || **v < lo || **v > hi)
        {
            return Err(Error::invalid(
                "nifti::write",
                format!("{kind:?} holds whole numbers in {lo}..={hi}, found {v} at voxel {i}"),
            ));
        }
    }
    let mut out = Vec::with_capacity(values.len() * kind.size());
    with_type!(kind, T => values.iter().for_each(|&v| out.extend_from_slice(&(v as T).to_le_bytes())));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [NiftiType; 9] = [
        NiftiType::U8,
        NiftiType::I8,
        NiftiType::I16,
        NiftiType::U16,
        NiftiType::I32,
        NiftiType::U32,
        NiftiType::I64,
        NiftiType::F32,
        NiftiType::F64,
    ];

    #[test]
    fn every_type_round_trips_and_codes_match() {
        for kind in ALL {
            assert_eq!(NiftiType::from_code(kind.code(), "f").unwrap(), kind);
            let values = [0.0, 1.0, 7.0, 100.0];
            let bytes = encode(kind, &values).unwrap();
            assert_eq!(bytes.len(), values.len() * kind.size());
            assert_eq!(
                decode(kind, &bytes, true, None),
                vec![0f32, 1.0, 7.0, 100.0],
                "{kind:?}"
            );
            assert_eq!(
                decode(kind, &bytes, true, Some((2.0, -1.0))),
                vec![-1f32, 1.0, 13.0, 199.0]
            );
        }
    }

    #[test]
    fn big_endian_and_errors() {
        assert_eq!(
            decode(NiftiType::I16, &[0x01, 0x02, 0xff, 0xfe], false, None),
            vec![258f32, -2.0]
        );
        assert_eq!(decode(NiftiType::I16, &[0x01, 0x02], true, None), vec![513f32]);
        let err = NiftiType::from_code(32, "x.nii").unwrap_err().to_string();
        assert!(
            err.contains("x.nii") && err.contains("unsupported NIfTI datatype 32"),
            "{err}"
        );
        let err = encode(NiftiType::U8, &[1.0, 256.0]).unwrap_err().to_string();
        assert!(err.contains("found 256 at voxel 1"), "{err}");
        assert!(encode(NiftiType::I16, &[0.5]).is_err());
        assert!(encode(NiftiType::F32, &[0.5]).is_ok());
    }
}
