//! The 348-byte NIfTI-1 header: parsing (either byte order), writing (little-endian) and the voxel-to-world
//! affine from its sform, qform or pixdim.

use seg_tensor::{Error, Result};

use super::NiftiType;

/// Size of the NIfTI-1 header in bytes (`sizeof_hdr`).
pub const HEADER_SIZE: usize = 348;

/// A 4x4 voxel-to-world matrix (row-major): world `(x, y, z, 1) = A (i, j, k, 1)` with `i` the file's
/// fastest axis.
pub type Affine = [[f64; 4]; 4];

/// The identity affine: 1 mm voxels, the first at the origin.
pub fn identity_affine() -> Affine {
    std::array::from_fn(|i| std::array::from_fn(|j| (i == j) as u8 as f64))
}

/// The fields of a NIfTI-1 header that this crate reads and writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Sizes of the axes `dim[1..=dim[0]]`, fastest (x) first.
    pub dim: Vec<usize>,
    /// `pixdim[0..8]`: `pixdim[0]` is qfac (the qform's handedness), `pixdim[1..4]` the spacing of x, y, z.
    pub pixdim: [f64; 8],
    pub datatype: NiftiType,
    /// Byte offset of the voxels in a single `.nii` file.
    pub vox_offset: usize,
    /// Stored values scale as `stored * scl_slope + scl_inter` (no scaling when `scl_slope` is 0).
    pub scl_slope: f64,
    pub scl_inter: f64,
    /// `xyzt_units`: 2 = mm and 8 = seconds, or-ed.
    pub xyzt_units: u8,
    pub qform_code: i16,
    pub sform_code: i16,
    /// Quaternion `(b, c, d)` of the qform rotation; `a = sqrt(1 - b² - c² - d²)`.
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    /// The sform's three rows.
    pub srow: [[f64; 4]; 3],
    pub descrip: String,
    /// Whether the file was little-endian (a written file always is).
    pub little_endian: bool,
}

/// Little- or big-endian reads from the header bytes.
struct Fields<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Fields<'_> {
    fn raw<const N: usize>(&self, at: usize) -> [u8; N] {
        self.bytes[at..at + N].try_into().expect("inside the header")
    }
    fn i16(&self, at: usize) -> i16 {
        if self.little {
            i16::from_le_bytes(self.raw(at))
        } else {
            i16::from_be_bytes(self.raw(at))
        }
    }
    fn f32(&self, at: usize) -> f64 {
        (if self.little {
            f32::from_le_bytes(self.raw(at))
        } else {
            f32::from_be_bytes(self.raw(at))
        }) as f64
    }
    fn f32s<const N: usize>(&self, at: usize) -> [f64; N] {
        std::array::from_fn(|i| self.f32(at + 4 * i))
    }
}

fn format_error(path: &str, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.into(),
        msg: msg.into(),
    }
}

impl Header {
    /// Parses the first 348 bytes of `bytes`; the byte order is the one in which `sizeof_hdr` reads 348.
    pub fn parse(bytes: &[u8], path: &str) -> Result<Self> {
        if bytes.len() < HEADER_SIZE {
            return Err(format_error(
                path,
                format!(
                    "truncated: a NIfTI-1 header has {HEADER_SIZE} bytes, found {}",
                    bytes.len()
                ),
            ));
        }
        let sizeof_hdr: [u8; 4] = bytes[..4].try_into().expect("4 bytes");
        let little = match (i32::from_le_bytes(sizeof_hdr), i32::from_be_bytes(sizeof_hdr)) {
            (348, _) => true,
            (_, 348) => false,
            (540, _) | (_, 540) => return Err(format_error(path, "NIfTI-2 is not supported; expected NIfTI-1")),
            (le, _) => {
                return Err(format_error(
                    path,
                    format!("not a NIfTI-1 file: expected sizeof_hdr 348, found {le}"),
                ))
            }
        };
        let f = Fields { bytes, little };
        let magic = &bytes[344..348];
        if magic == b"ni1\0" {
            return Err(format_error(
                path,
                "a two-file NIfTI (.hdr/.img) is not supported; expected magic \"n+1\"",
            ));
        }
        if magic != b"n+1\0" {
            return Err(format_error(
                path,
                format!("wrong magic: expected \"n+1\\0\", found {magic:?}"),
            ));
        }
        let ndim = f.i16(40);
        if !(1..=7).contains(&ndim) {
            return Err(format_error(path, format!("dim[0] must be in 1..=7, found {ndim}")));
        }
        let dim = (1..=ndim as usize)
            .map(|i| match f.i16(40 + 2 * i) {
                n if n >= 1 => Ok(n as usize),
                n => Err(format_error(path, format!("dim[{i}] must be at least 1, found {n}"))),
            })
            .collect::<Result<Vec<_>>>()?;
        let datatype = NiftiType::from_code(f.i16(70), path)?;
        let vox_offset = f.f32(108);
        if !(vox_offset >= 352.0 && vox_offset.fract() == 0.0) {
            return Err(format_error(
                path,
                format!("vox_offset must be a whole number >= 352, found {vox_offset}"),
            ));
        }
        let descrip = bytes[148..228]
            .iter()
            .take_while(|&&b| b != 0)
            .map(|&b| b as char)
            .collect();
        Ok(Header {
            dim,
            pixdim: f.f32s(76),
            datatype,
            vox_offset: vox_offset as usize,
            scl_slope: f.f32(112),
            scl_inter: f.f32(116),
            xyzt_units: bytes[123],
            qform_code: f.i16(252),
            sform_code: f.i16(254),
            quatern: f.f32s(256),
            qoffset: f.f32s(268),
            srow: [f.f32s(280), f.f32s(296), f.f32s(312)],
            descrip,
            little_endian: little,
        })
    }

    /// A header for a volume with axis sizes `dim` (x fastest) of `datatype`, with `affine` as both its
    /// sform and (its rotation part made a quaternion) its qform, codes 1 (scanner), units mm.
    pub fn new(dim: &[usize], datatype: NiftiType, affine: &Affine) -> Self {
        let mut header = Header {
            dim: dim.to_vec(),
            pixdim: [1.0; 8],
            datatype,
            vox_offset: HEADER_SIZE + 4,
            scl_slope: 1.0,
            scl_inter: 0.0,
            xyzt_units: 2 | 8,
            qform_code: 1,
            sform_code: 1,
            quatern: [0.0; 3],
            qoffset: [0.0; 3],
            srow: [[0.0; 4]; 3],
            descrip: String::new(),
            little_endian: true,
        };
        header.set_affine(affine);
        header
    }

    /// This header's space (affine, codes, units) for a volume of axis sizes `dim` stored as `datatype`.
    pub fn derive(&self, dim: &[usize], datatype: NiftiType) -> Self {
        Header {
            dim: dim.to_vec(),
            datatype,
            vox_offset: HEADER_SIZE + 4,
            scl_slope: 1.0,
            scl_inter: 0.0,
            little_endian: true,
            ..self.clone()
        }
    }

    /// Sets the sform to `affine`, and the qform and pixdim to its nearest rotation, spacing and
    /// handedness (`nifti_mat44_to_quatern`, the columns normalised rather than polar-decomposed: exact for
    /// any affine without shear).
    pub fn set_affine(&mut self, affine: &Affine) {
        self.srow = [affine[0], affine[1], affine[2]];
        let column = |j: usize| [affine[0][j], affine[1][j], affine[2][j]];
        let mut r = [[0.0; 3]; 3];
        for j in 0..3 {
            let c = column(j);
            let norm = c.iter().map(|v| v * v).sum::<f64>().sqrt();
            let norm = if norm > 0.0 { norm } else { 1.0 };
            self.pixdim[j + 1] = norm;
            r.iter_mut().zip(c).for_each(|(row, v)| row[j] = v / norm);
        }
        let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
            + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
        self.pixdim[0] = if det < 0.0 { -1.0 } else { 1.0 };
        if det < 0.0 {
            (0..3).for_each(|i| r[i][2] = -r[i][2]);
        }
        self.quatern = rotation_to_quatern(&r);
        self.qoffset = [affine[0][3], affine[1][3], affine[2][3]];
    }

    /// The voxel-to-world affine: the sform when `sform_code > 0`, else the qform when `qform_code > 0`,
    /// else the spacing alone (`diag(pixdim[1], pixdim[2], pixdim[3], 1)`), as the NIfTI-1 standard orders
    /// them.
    pub fn affine(&self) -> Affine {
        if self.sform_code > 0 {
            return [self.srow[0], self.srow[1], self.srow[2], [0.0, 0.0, 0.0, 1.0]];
        }
        let [dx, dy, dz] = self.spacing_xyz();
        if self.qform_code <= 0 {
            return [
                [dx, 0.0, 0.0, 0.0],
                [0.0, dy, 0.0, 0.0],
                [0.0, 0.0, dz, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ];
        }
        let qfac = if self.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let r = quatern_to_rotation(self.quatern);
        let scale = [dx, dy, dz * qfac];
        let mut a = [[0.0, 0.0, 0.0, 0.0], [0.0; 4], [0.0; 4], [0.0, 0.0, 0.0, 1.0]];
        for i in 0..3 {
            for j in 0..3 {
                a[i][j] = r[i][j] * scale[j];
            }
            a[i][3] = self.qoffset[i];
        }
        a
    }

    /// Voxel spacing along x, y, z (`pixdim[1..4]`, absolute values; an axis beyond `dim[0]` or of spacing
    /// 0 counts as 1).
    pub fn spacing_xyz(&self) -> [f64; 3] {
        std::array::from_fn(|i| match self.pixdim[i + 1].abs() {
            s if s > 0.0 && i < self.dim.len() => s,
            _ => 1.0,
        })
    }

    /// Voxel spacing in tensor order `(D, H, W) = (z, y, x)`.
    pub fn spacing(&self) -> [f64; 3] {
        let [x, y, z] = self.spacing_xyz();
        [z, y, x]
    }

    /// The shape of the tensor holding the voxels: the axis sizes slowest first, at least three of them
    /// (`(Z, Y, X)`, or `(T, Z, Y, X)` for a 4D file; a 2D file is `(1, Y, X)`).
    pub fn tensor_shape(&self) -> Vec<usize> {
        let mut shape: Vec<usize> = self.dim.iter().rev().copied().collect();
        while shape.len() < 3 {
            shape.insert(0, 1);
        }
        shape
    }

    /// The number of voxels.
    pub fn numel(&self) -> usize {
        self.dim.iter().product()
    }

    /// `Some((slope, inter))` when the header asks for a scaling other than the identity.
    pub fn scaling(&self) -> Option<(f64, f64)> {
        let identity = self.scl_slope == 1.0 && self.scl_inter == 0.0;
        (self.scl_slope != 0.0 && self.scl_slope.is_finite() && !identity).then_some((self.scl_slope, self.scl_inter))
    }

    /// The header as the 348 bytes of a little-endian file plus the 4-byte "no extensions" flag.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_SIZE + 4];
        let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &(HEADER_SIZE as i32).to_le_bytes());
        put(38, b"r");
        put(40, &(self.dim.len() as i16).to_le_bytes());
        for (i, &n) in self.dim.iter().enumerate() {
            put(42 + 2 * i, &(n as i16).to_le_bytes());
        }
        for i in self.dim.len() + 1..8 {
            put(40 + 2 * i, &1i16.to_le_bytes());
        }
        put(70, &self.datatype.code().to_le_bytes());
        put(72, &(8 * self.datatype.size() as i16).to_le_bytes());
        let f32s = |values: &[f64]| {
            values
                .iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect::<Vec<u8>>()
        };
        put(76, &f32s(&self.pixdim));
        put(108, &f32s(&[self.vox_offset as f64, self.scl_slope, self.scl_inter]));
        put(123, &[self.xyzt_units]);
        let descrip: Vec<u8> = self.descrip.bytes().take(79).collect();
        put(148, &descrip);
        put(252, &self.qform_code.to_le_bytes());
        put(254, &self.sform_code.to_le_bytes());
        put(256, &f32s(&self.quatern));
        put(268, &f32s(&self.qoffset));
        put(280, &f32s(&self.srow.concat()));
        put(344, b"n+1\0");
        b
    }
}

/// The rotation of unit quaternion `(a, b, c, d)` with `a = sqrt(1 - b² - c² - d²)` (NIfTI-1's
/// `quatern_to_mat44`; a `(b, c, d)` of norm above 1 is normalised with `a = 0`).
fn quatern_to_rotation([b, c, d]: [f64; 3]) -> [[f64; 3]; 3] {
    let rest = 1.0 - (b * b + c * c + d * d);
    let (a, b, c, d) = if rest < 1e-7 {
        let n = (b * b + c * c + d * d).sqrt();
        (0.0, b / n, c / n, d / n)
    } else {
        (rest.sqrt(), b, c, d)
    };
    [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ]
}

/// The quaternion `(b, c, d)` (with `a >= 0`) of a proper rotation matrix (NIfTI-1's `mat44_to_quatern`).
fn rotation_to_quatern(r: &[[f64; 3]; 3]) -> [f64; 3] {
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (a, b, c, d) = if trace > 0.5 {
        let a = 0.5 * trace.sqrt();
        (
            a,
            0.25 * (r[2][1] - r[1][2]) / a,
            0.25 * (r[0][2] - r[2][0]) / a,
            0.25 * (r[1][0] - r[0][1]) / a,
        )
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            let b = 0.5 * xd.sqrt();
            (
                0.25 * (r[2][1] - r[1][2]) / b,
                b,
                0.25 * (r[0][1] + r[1][0]) / b,
                0.25 * (r[0][2] + r[2][0]) / b,
            )
        } else if yd > 1.0 {
            let c = 0.5 * yd.sqrt();
            (
                0.25 * (r[0][2] - r[2][0]) / c,
                0.25 * (r[0][1] + r[1][0]) / c,
                c,
                0.25 * (r[1][2] + r[2][1]) / c,
            )
        } else {
            let d = 0.5 * zd.sqrt();
            (
                0.25 * (r[1][0] - r[0][1]) / d,
                0.25 * (r[0][2] + r[2][0]) / d,
                0.25 * (r[1][2] + r[2][1]) / d,
                d,
            )
        }
    };
    if a < 0.0 {
        [-b, -c, -d]
    } else {
        [b, c, d]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Affine, b: &Affine, tol: f64) -> bool {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(x, y)| (x - y).abs() < tol)
    }

    /// An affine with a rotation about each axis, anisotropic spacing and a flip when `flip`.
    fn rotated(flip: bool) -> Affine {
        let (s1, c1, s2, c2, s3, c3) = (
            0.3f64.sin(),
            0.3f64.cos(),
            1.9f64.sin(),
            1.9f64.cos(),
            2.8f64.sin(),
            2.8f64.cos(),
        );
        let rx = [[1.0, 0.0, 0.0], [0.0, c1, -s1], [0.0, s1, c1]];
        let ry = [[c2, 0.0, s2], [0.0, 1.0, 0.0], [-s2, 0.0, c2]];
        let rz = [[c3, -s3, 0.0], [s3, c3, 0.0], [0.0, 0.0, 1.0]];
        let mul = |a: [[f64; 3]; 3], b: [[f64; 3]; 3]| -> [[f64; 3]; 3] {
            std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
        };
        let r = mul(mul(rz, ry), rx);
        let scale = [0.8, 1.2, if flip { -2.5 } else { 2.5 }];
        let mut a = [[0.0; 4], [0.0; 4], [0.0; 4], [0.0, 0.0, 0.0, 1.0]];
        for i in 0..3 {
            for j in 0..3 {
                a[i][j] = r[i][j] * scale[j];
            }
            a[i][3] = [-90.0, 12.5, 40.0][i];
        }
        a
    }

    #[test]
    fn qform_reproduces_a_rotated_affine() {
        for flip in [false, true] {
            let affine = rotated(flip);
            let mut h = Header::new(&[4, 5, 6], NiftiType::F32, &affine);
            assert!(close(&h.affine(), &affine, 1e-12));
            h.sform_code = 0;
            assert!(close(&h.affine(), &affine, 1e-9), "{:?} vs {affine:?}", h.affine());
            assert_eq!(h.pixdim[0], if flip { -1.0 } else { 1.0 });
            assert!((h.spacing_xyz()[2] - 2.5).abs() < 1e-12);
        }
    }

    #[test]
    fn quaternion_branches_round_trip() {
        // Rotations by pi about x, y, z take the three non-trace branches.
        let cases = [
            [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]],
            [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]],
            [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
        ];
        for r in cases {
            let back = quatern_to_rotation(rotation_to_quatern(&r));
            assert!(
                r.iter()
                    .flatten()
                    .zip(back.iter().flatten())
                    .all(|(a, b)| (a - b).abs() < 1e-9),
                "{r:?}"
            );
        }
    }

    #[test]
    fn pixdim_fallback_and_bytes_round_trip() {
        let mut h = Header::new(&[3, 4, 5, 2], NiftiType::I16, &rotated(true));
        h.descrip = "seg test".into();
        h.scl_slope = 2.0;
        let back = Header::parse(&h.to_bytes(), "mem").unwrap();
        assert_eq!(back.dim, vec![3, 4, 5, 2]);
        assert_eq!(back.tensor_shape(), vec![2, 5, 4, 3]);
        assert_eq!(back.descrip, "seg test");
        assert_eq!(back.scaling(), Some((2.0, 0.0)));
        assert!(close(&back.affine(), &h.affine(), 1e-4));
        let mut plain = back.clone();
        plain.sform_code = 0;
        plain.qform_code = 0;
        let s = plain.spacing_xyz();
        assert_eq!(plain.affine()[0][0], s[0]);
        assert_eq!(plain.spacing(), [s[2], s[1], s[0]]);
    }

    #[test]
    fn big_endian_header_parses() {
        let h = Header::new(&[2, 3, 4], NiftiType::I16, &rotated(false));
        let le = h.to_bytes();
        // Swap every multi-byte field this crate reads to big-endian.
        let mut be = le.clone();
        let swap = |b: &mut Vec<u8>, at: usize, n: usize| b[at..at + n].reverse();
        swap(&mut be, 0, 4);
        (40..56)
            .step_by(2)
            .chain([70, 72, 252, 254])
            .for_each(|at| swap(&mut be, at, 2));
        (76..120)
            .step_by(4)
            .chain((256..328).step_by(4))
            .for_each(|at| swap(&mut be, at, 4));
        let back = Header::parse(&be, "be").unwrap();
        assert!(!back.little_endian);
        assert_eq!(
            Header {
                little_endian: true,
                ..back
            },
            Header::parse(&le, "le").unwrap()
        );
    }

    #[test]
    fn bad_headers_are_named() {
        let good = Header::new(&[2, 2, 2], NiftiType::U8, &rotated(false)).to_bytes();
        let err = |bytes: &[u8]| Header::parse(bytes, "f.nii").unwrap_err().to_string();
        assert!(err(&good[..100]).contains("truncated: a NIfTI-1 header has 348 bytes, found 100"));
        let mut b = good.clone();
        b[344..348].copy_from_slice(b"abcd");
        assert!(err(&b).contains("wrong magic"));
        b[344..348].copy_from_slice(b"ni1\0");
        assert!(err(&b).contains("two-file"));
        let mut b = good.clone();
        b[0..4].copy_from_slice(&100i32.to_le_bytes());
        assert!(err(&b).contains("expected sizeof_hdr 348, found 100"));
        let mut b = good.clone();
        b[70..72].copy_from_slice(&128i16.to_le_bytes());
        assert!(err(&b).contains("unsupported NIfTI datatype 128"));
        let mut b = good;
        b[42..44].copy_from_slice(&0i16.to_le_bytes());
        assert!(err(&b).contains("dim[1] must be at least 1, found 0"));
    }
}
