//! NIfTI-1 reading and writing, `.nii` and `.nii.gz`.
//!
//! Our own code rather than the `nifti` crate: the format is one 348-byte header and a block of voxels,
//! about as much code as adapting that crate's ndarray-based API to seg's `Tensor` would take, and it
//! keeps the dependencies to `flate2` (pure-Rust deflate) alone.
//!
//! The voxels become an f32 [`Tensor`] of shape [`Header::tensor_shape`]: `(Z, Y, X)` for a 3D file, the
//! file's bytes in the file's order (x fastest), no transpose. Values are scaled by `scl_slope` and
//! `scl_inter` when the header asks. Both byte orders are read; files are written little-endian with the
//! header's affine as sform and qform. Gzip is recognised by its magic bytes on read and chosen by a
//! `.gz` file name on write.

mod datatype;
mod header;

use std::io::{Read, Write};
use std::path::Path;

use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use seg_tensor::{Error, Result, Tensor};

pub use datatype::NiftiType;
pub use header::{identity_affine, Affine, Header, HEADER_SIZE};

/// A NIfTI volume: its header and its voxels as an f32 tensor of shape `header.tensor_shape()`.
#[derive(Clone, Debug)]
pub struct NiftiImage {
    pub header: Header,
    pub data: Tensor,
}

impl NiftiImage {
    /// The voxel-to-world affine ([`Header::affine`]).
    pub fn affine(&self) -> Affine {
        self.header.affine()
    }

    /// The voxel spacing in tensor order `(D, H, W) = (z, y, x)`.
    pub fn spacing(&self) -> [f64; 3] {
        self.header.spacing()
    }
}

fn format_error(path: &str, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.into(),
        msg: msg.into(),
    }
}

/// Reads a `.nii` or `.nii.gz` file.
pub fn read(path: impl AsRef<Path>) -> Result<NiftiImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| format_error(&path.display().to_string(), e.to_string()))?;
    from_bytes(&bytes, &path.display().to_string())
}

/// Parses the bytes of a `.nii` file, gzip-compressed or not; `name` is used in error messages.
pub fn from_bytes(bytes: &[u8], name: &str) -> Result<NiftiImage> {
    let inflated;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| format_error(name, format!("truncated or corrupt gzip stream: {e}")))?;
        inflated = out;
        &inflated[..]
    } else {
        bytes
    };
    let header = Header::parse(bytes, name)?;
    let needed = header.numel() * header.datatype.size();
    let start = header.vox_offset;
    let available = bytes.len().saturating_sub(start);
    if available < needed {
        return Err(format_error(
            name,
            format!(
                "truncated: {} voxels of {:?} need {needed} bytes from offset {start}, found {available}",
                header.numel(),
                header.datatype
            ),
        ));
    }
    let values = datatype::decode(
        header.datatype,
        &bytes[start..start + needed],
        header.little_endian,
        header.scaling(),
    );
    let data = Tensor::from_vec(values, &header.tensor_shape())?;
    Ok(NiftiImage { header, data })
}

/// Reads an image and its label map and checks that they share a voxel grid ([`check_same_grid`]).
pub fn read_pair(image: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<(NiftiImage, NiftiImage)> {
    let (image_path, label_path) = (image.as_ref(), labels.as_ref());
    let (image, labels) = (read(image_path)?, read(label_path)?);
    check_same_grid(&image.header, image_path, &labels.header, label_path)?;
    Ok((image, labels))
}

/// An error naming both files unless `other` (read from `other_path`) has the axis sizes of `image`.
pub fn check_same_grid(image: &Header, image_path: &Path, other: &Header, other_path: &Path) -> Result<()> {
    if image.dim == other.dim {
        return Ok(());
    }
    Err(format_error(
        &other_path.display().to_string(),
        format!(
            "dimension mismatch: the image {} has dims {:?}, this file has {:?}",
            image_path.display(),
            image.dim,
            other.dim
        ),
    ))
}

/// The bytes of a `.nii` file holding `data` (any dtype, values whole numbers in range for an integer
/// `header.datatype`) with `header`'s space; `data`'s shape must be `header.tensor_shape()`.
pub fn to_bytes(header: &Header, data: &Tensor) -> Result<Vec<u8>> {
    if data.shape() != header.tensor_shape() {
        return Err(Error::ShapeMismatch {
            op: "nifti::write",
            expected: format!(
                "the header's shape {:?} (dims {:?} reversed)",
                header.tensor_shape(),
                header.dim
            ),
            found: data.shape().to_vec(),
        });
    }
    let header = Header {
        vox_offset: HEADER_SIZE + 4,
        scl_slope: 1.0,
        scl_inter: 0.0,
        ..header.clone()
    };
    let mut bytes = header.to_bytes();
    bytes.extend(datatype::encode(header.datatype, &data.to_vec_f64())?);
    Ok(bytes)
}

/// Writes `data` with `header` to `path`, gzip-compressed when the name ends in `.gz`.
/// `Header::new` makes a header from an affine; `Header::derive` keeps another image's space.
pub fn write(path: impl AsRef<Path>, header: &Header, data: &Tensor) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_bytes(header, data)?;
    let io = |e: std::io::Error| format_error(&path.display().to_string(), e.to_string());
    if path.extension().is_some_and(|e| e == "gz") {
        let mut encoder = GzEncoder::new(std::fs::File::create(path).map_err(io)?, Compression::fast());
        encoder.write_all(&bytes).map_err(io)?;
        encoder.finish().map_err(io)?;
        Ok(())
    } else {
        std::fs::write(path, bytes).map_err(io)
    }
}

#[cfg(test)]
mod tests;
