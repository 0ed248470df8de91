"""Cut a model's input out of a batch of canonical 120x120 faces (NumPy only, no TensorFlow)."""

from __future__ import annotations

import numpy as np

from annotator.specs import ModelSpec


def crop_batch(faces: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Return ``spec``'s input for ``faces`` of shape (n, 120, 120, 3), resized by block averaging."""
    box = spec.crop
    region = faces[:, box.top : box.bottom, box.left : box.right, :]
    height, width = box.shape
    out_h, out_w = spec.input_size
    if (height, width) == (out_h, out_w):
        return np.ascontiguousarray(region, dtype=np.float32)
    if height % out_h or width % out_w:
        raise ValueError(
            f"Crop {height}x{width} of model {spec.name!r} is not a whole multiple of its input "
            f"{out_h}x{out_w}. Received: crop={box}, input_size={spec.input_size}."
        )
    fy, fx = height // out_h, width // out_w
    # Block averaging is exact area resampling for whole factors (120 -> 60 for gender) and needs no TF.
    # Summing the fy*fx strided views is ~10x faster than a mean over a 6-D reshape.
    total = np.zeros((len(faces), out_h, out_w, 3), np.float32)
    for dy in range(fy):
        for dx in range(fx):
            total += region[:, dy::fy, dx::fx, :]
    return total / np.float32(fy * fx)
