"""Writes the NIfTI files that seg-data's nibabel test reads, and nibabel's reading of them.

Run from this folder with nibabel installed (`pip install nibabel`): `python3 generate.py`.

- be_scaled.nii.gz: big-endian int16 with scl_slope/scl_inter (nibabel picks them for fractional data),
  a rotated affine as qform (code 1) and sform (code 2).
- qform_only.nii: float32, sform_code 0, the affine only as a quaternion.
- *.expected.f32: the voxels as nibabel scales them, in seg's (z, y, x) order, little-endian f32.
- *.affine.f64: nibabel's affine, row-major little-endian f64.
"""

import nibabel as nib
import numpy as np

data = (np.arange(5 * 6 * 7).reshape(5, 6, 7) % 50) * 0.37 + 3.1  # (x, y, z)
affine = np.array([[0.0, -1.2, 0.0, 10.0], [0.8, 0.0, 0.0, -20.0], [0.0, 0.0, 2.5, 30.0], [0, 0, 0, 1]])

header = nib.Nifti1Header(endianness=">")
header.set_data_dtype(np.int16)
scaled = nib.Nifti1Image(data, affine, header=header)
scaled.set_qform(affine, code=1)
scaled.set_sform(affine, code=2)
nib.save(scaled, "be_scaled.nii.gz")

qform = nib.Nifti1Image(data.astype(np.float32), affine)
qform.set_sform(None, code=0)
qform.set_qform(affine, code=1)
nib.save(qform, "qform_only.nii")

for name in ["be_scaled.nii.gz", "qform_only.nii"]:
    image = nib.load(name)
    stem = name.split(".")[0]
    image.get_fdata().transpose(2, 1, 0).astype("<f4").tofile(f"{stem}.expected.f32")
    image.affine.astype("<f8").tofile(f"{stem}.affine.f64")
