"""Voxel grids in world space: shape plus a NIfTI-style voxel-to-world affine (millimetres)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from jaxtyping import Float


@dataclass(frozen=True, eq=False)
class Grid:
    """A regular voxel grid.

    Attributes:
        shape: number of voxels along each array axis (i, j, k).
        affine: 4×4 map from voxel indices (i, j, k, 1) to world coordinates in mm, as in NIfTI.
            Voxel (0, 0, 0) is the *centre* of the first voxel.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray = field(repr=False)

    def __post_init__(self):
        shape = tuple(int(n) for n in self.shape)
        affine = np.asarray(self.affine, dtype=np.float64)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"a grid needs three positive sizes, got {self.shape}")
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise ValueError("a grid's affine must be a finite 4×4 matrix")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "affine", affine)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel edge lengths in mm along i, j, k."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def axes_orthogonal(self) -> bool:
        """True when the voxel axes are orthogonal in world space (no shear), as in any NIfTI
        written by common tools; finite-volume solvers and separable seeds need this."""
        linear = self.affine[:3, :3]
        gram = linear.T @ linear
        return bool(np.allclose(gram, np.diag(np.diag(gram)), atol=1e-6 * np.max(np.abs(gram))))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (1 ml = 1000 mm³)."""
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    def voxel_to_world(self, ijk: npt.ArrayLike) -> Float[np.ndarray, "*batch 3"]:
        """Map voxel indices (..., 3) to world coordinates (..., 3) in mm."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_voxel(self, xyz_mm: npt.ArrayLike) -> Float[np.ndarray, "*batch 3"]:
        """Map world coordinates (..., 3) in mm to continuous voxel indices (..., 3)."""
        inverse = np.linalg.inv(self.affine)
        xyz_mm = np.asarray(xyz_mm, dtype=np.float64)
        return xyz_mm @ inverse[:3, :3].T + inverse[:3, 3]

    def world_bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest world coordinate of any voxel centre, per axis (mm)."""
        corners = np.array(np.meshgrid(*[[0, n - 1] for n in self.shape], indexing="ij"))
        world = self.voxel_to_world(corners.reshape(3, -1).T)
        return world.min(axis=0), world.max(axis=0)

    def same_as(self, other: Grid, atol_mm: float = 1e-4) -> bool:
        """True when both grids have the same shape and (to `atol_mm`) the same affine."""
        return self.shape == other.shape and bool(
            np.allclose(self.affine, other.affine, atol=atol_mm, rtol=0.0)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grid) and self.same_as(other, atol_mm=0.0)

    def __hash__(self) -> int:
        return hash((self.shape, self.affine.tobytes()))
