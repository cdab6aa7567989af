"""Servo to a Cartesian target with the OSC delta controller.

Measured on this stack (docs/protocol.md, "Controller response"): a full action on one axis moves the end effector about
1.25 cm per step at steady state with about 3 steps of lag; rotation actions are world-frame axis-angle rates (a = 0.5
turns about 0.05 rad per step); -1 opens and +1 closes the gripper, closing takes about 10 steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tgrpo.experts.scene import Scene, down_orientation, rotvec_of

OPEN, CLOSE = -1.0, 1.0


@dataclass(frozen=True)
class Gains:
    """Proportional gains: action = gain * error, clipped.

    kp 25 / m: a 4 cm error commands full speed, a 1 cm error 0.25 (about 3 mm per step), which settles in a few
    steps despite the controller's lag. kr 2 / rad: a 0.1 rad error commands 0.2.
    """

    kp: float = 25.0
    kr: float = 2.0
    max_norm: float = 1.4


GAINS = Gains()


def servo(scene: Scene, target: np.ndarray, yaw: float, grip: float, speed: float = 1.0,
          gains: Gains = GAINS, hold_orientation: bool = True) -> np.ndarray:
    """Action [7] moving the end effector towards `target` with the gripper pointing down at `yaw`."""
    action = np.zeros(7)
    v = (np.asarray(target, dtype=np.float64) - scene.eef) * gains.kp
    norm = np.linalg.norm(v)
    limit = gains.max_norm * speed
    if norm > limit:
        v *= limit / norm
    action[:3] = np.clip(v, -speed, speed)
    if hold_orientation:
        err = rotvec_of(down_orientation(yaw) @ scene.eef_mat.T)
        action[3:6] = np.clip(err * gains.kr, -1.0, 1.0)
    action[6] = grip
    return action


def servo_pose(scene: Scene, target: np.ndarray, rotation: np.ndarray, grip: float, speed: float = 1.0,
               gains: Gains = GAINS) -> np.ndarray:
    """Like `servo` with any target orientation (a world rotation matrix of the gripper frame)."""
    action = servo(scene, target, 0.0, grip, speed, gains, hold_orientation=False)
    err = rotvec_of(rotation @ scene.eef_mat.T)
    action[3:6] = np.clip(err * gains.kr, -1.0, 1.0)
    return action


def rotation_error(scene: Scene, rotation: np.ndarray) -> float:
    return float(np.linalg.norm(rotvec_of(rotation @ scene.eef_mat.T)))


def yaw_error(scene: Scene, yaw: float) -> float:
    """Angle (rad) between the current gripper orientation and pointing down at `yaw`."""
    return float(np.linalg.norm(rotvec_of(down_orientation(yaw) @ scene.eef_mat.T)))


def current_yaw(scene: Scene) -> float:
    """Yaw of the gripper's x axis about world z (the convention of `down_orientation`)."""
    m = scene.eef_mat
    return float(np.arctan2(m[1, 0], m[0, 0]))
