"""Array type aliases shared across bayestumor (jaxtyping shapes, documented units)."""

from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

Volume = Float[Array, "x y z"]
"""A scalar field on a voxel grid, e.g. tumour-cell density in [0, 1]."""

VolumeBatch = Float[Array, "batch x y z"]
Scalar = Float[ArrayLike, ""]
Vector3 = Float[ArrayLike, "3"]
Mask = Bool[Array, "x y z"]
Affine = Float[ArrayLike, "4 4"]

__all__ = [
    "Affine",
    "Array",
    "ArrayLike",
    "Bool",
    "Float",
    "Int",
    "Mask",
    "PRNGKeyArray",
    "Scalar",
    "Vector3",
    "Volume",
    "VolumeBatch",
]
