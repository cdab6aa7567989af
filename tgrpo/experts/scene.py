"""Read-only view of one privileged vector by name, plus the rotation helpers the skills need.

Everything the expert knows comes from here: it never touches the simulator, so it runs in the parent process on
the stacked ``obs['privileged']`` rows that rollouts and evaluation already return.
"""

from __future__ import annotations

import numpy as np

from tgrpo.envs.privileged import PrivilegedLayout


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion in xyzw order (robosuite's)."""
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rotvec_of(mat: np.ndarray) -> np.ndarray:
    """Axis-angle vector (axis * angle, angle in [0, pi]) of a rotation matrix."""
    cos = np.clip((np.trace(mat) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-8:
        return np.zeros(3)
    axis = np.array([mat[2, 1] - mat[1, 2], mat[0, 2] - mat[2, 0], mat[1, 0] - mat[0, 1]])
    if np.pi - angle < 1e-4:  # near pi the antisymmetric part vanishes: take the axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(mat) + 1.0) / 2.0, 0.0, None))
        k = int(np.argmax(axis))
        for j in range(3):
            if j != k and mat[k, j] + mat[j, k] < 0:
                axis[j] = -axis[j]
        return axis / np.linalg.norm(axis) * angle
    return axis / np.linalg.norm(axis) * angle


def down_orientation(yaw: float) -> np.ndarray:
    """Gripper pointing straight down, fingers closing along (sin yaw, -cos yaw, 0): Rz(yaw) @ Rx(pi)."""
    c, s = np.cos(yaw), np.sin(yaw)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return rz @ np.diag([1.0, -1.0, -1.0])


def wrap_half_turn(angle: float) -> float:
    """Angle modulo pi into (-pi/2, pi/2]: a parallel gripper is symmetric under a half turn."""
    a = (angle + np.pi / 2) % np.pi - np.pi / 2
    return a if a > -np.pi / 2 else a + np.pi


class Scene:
    """Named access to one privileged row [D]."""

    def __init__(self, layout: PrivilegedLayout, vector: np.ndarray):
        self.layout = layout
        self.v = np.asarray(vector, dtype=np.float64)

    def get(self, name: str) -> np.ndarray:
        return self.layout.get(self.v, name)

    def has(self, name: str) -> bool:
        return name in self.layout.slices

    @property
    def eef(self) -> np.ndarray:
        return self.get("eef_pos")

    @property
    def eef_mat(self) -> np.ndarray:
        return quat_to_mat(self.get("eef_quat"))

    @property
    def opening(self) -> float:
        return float(self.get("gripper_opening")[0])

    def pos(self, entity: str) -> np.ndarray:
        return self.get(f"pose/{entity}")[:3]

    def mat(self, entity: str) -> np.ndarray:
        return quat_to_mat(self.get(f"pose/{entity}")[3:])

    def aabb(self, entity: str) -> tuple[np.ndarray, np.ndarray]:
        box = self.get(f"aabb/{entity}")
        return box[:3], box[3:]

    def box(self, entity: str) -> tuple[np.ndarray, np.ndarray]:
        """Body-frame bounding box: center, half extents."""
        b = self.get(f"box/{entity}")
        return b[:3], b[3:]

    def size(self, region: str) -> np.ndarray:
        return self.get(f"size/{region}")

    def goal(self, i: int) -> bool:
        return bool(self.get(f"goal/{i}")[0] > 0.5)

    def joints_of(self, entity: str) -> list[str]:
        prefix = f"joint/{entity}/"
        return [k[len(prefix):] for k in self.layout.slices if k.startswith(prefix)]

    def joint(self, entity: str, joint: str) -> float:
        return float(self.get(f"joint/{entity}/{joint}")[0])

    def horizontal_axes(self, entity: str) -> list[tuple[np.ndarray, float]]:
        """The object's two most horizontal body axes as (unit world direction in xy, half extent), short first."""
        rot = self.mat(entity)
        _, half = self.box(entity)
        order = np.argsort(np.abs(rot[2, :]))[:2]
        axes = []
        for i in order:
            d = rot[:2, i].copy()
            n = np.linalg.norm(d)
            axes.append((d / n if n > 1e-6 else np.array([1.0, 0.0]), float(half[i])))
        axes.sort(key=lambda a: a[1])
        return axes
