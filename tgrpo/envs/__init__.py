"""LIBERO environment layer: protocol constants, env wrapper, privileged state, workers and group rollout.

Importing it sets the renderer default before robosuite loads: ``MUJOCO_GL=egl`` unless the user chose one
(robosuite 1.4 forces EGL anyway unless it is exactly ``osmesa`` or ``glx``).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] == "egl":
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
