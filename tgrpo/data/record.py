"""Record expert demonstrations from fresh initial placements, in LIBERO's dataset layout.

Training demonstrations never start from the 50 official init states of a task (those are the evaluation set):
each demo seeds LIBERO's placement sampler (``env.seed(seed)``, which seeds NumPy's global generator that the
region samplers draw from), calls ``env.reset()`` to sample new placements, and refuses a state that matches an
official one. The episode then runs under the evaluation protocol (clean-up, restore, 10 wait steps), so a demo's
first observation is distributed as an evaluation episode's.

Per step t the demo stores the observation the expert acted on (before action t), the simulator state it was
in, and the action. LIBERO's own regenerated files pair the observation after action t with the state before it;
see docs/datasets.md.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from tgrpo.data.hdf5 import Demo
from tgrpo.envs.libero_env import EpisodeStart

OFFICIAL_MATCH_TOL = 1e-3  # max |difference| over the object part of the state below which two states are "the same"


def matches_official(state: np.ndarray, official: np.ndarray, robot_dims: int = 0,
                     tol: float = OFFICIAL_MATCH_TOL) -> bool:
    """Whether `state` equals one of the official init states [N, S] (to `tol`, ignoring the first `robot_dims`
    entries after the time entry when given)."""
    official = np.asarray(official, dtype=np.float64)
    state = np.asarray(state, dtype=np.float64)
    if official.ndim != 2 or official.shape[1] != state.shape[0]:
        return False
    diff = np.abs(official[:, 1 + robot_dims:] - state[None, 1 + robot_dims:]).max(axis=1)
    return bool(diff.min() < tol)


def fresh_start(env, seed: int, official: np.ndarray | None = None, max_tries: int = 20) -> tuple[EpisodeStart, int]:
    """A new placement of the task's objects and fixtures sampled by LIBERO from `seed` (then other seeds if it
    collides with an official state); returns (the episode start, seed used)."""
    for k in range(max_tries):
        s = seed + k * 7919  # a distinct stream per retry, away from the next demo's seed
        start = env.sample_start(s)
        if official is None or not matches_official(start.state, official):
            return start, s
    raise RuntimeError(f"could not sample a placement distinct from the official init states from seed {seed}")


@dataclass
class Recording:
    demo: Demo
    success: bool
    steps: int
    wall_s: float
    transitions: list[dict]
    stage_names: list[str]


def _axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    from robosuite.utils.transform_utils import quat2axisangle

    return np.asarray(quat2axisangle(np.asarray(quat_xyzw, dtype=np.float64)))


def perturb(action: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """The action the simulator receives when demonstrations are collected with noise injection (DART, Laskey et
    al. 2017): Gaussian noise of std `noise` on the six arm dims, clipped to the action range; the gripper is kept."""
    out = np.array(action, dtype=np.float64)
    out[:6] = np.clip(out[:6] + rng.normal(0.0, noise, 6), -1.0, 1.0)
    return out


def record_episode(env, expert, start: EpisodeStart, episode_key: tuple = (), privileged: bool = True,
                   slot: int = 0, action_noise: float = 0.0, noise_seed: int = 0) -> Recording:
    """Run the expert from `start` under the env's protocol and collect a LIBERO-layout demo.

    With `action_noise` > 0 the executed actions are perturbed (`perturb`, noise drawn from `noise_seed`) while
    the demo's `actions` keep the expert's own labels for the states it actually saw; `executed_actions` holds
    what was executed. The expert being closed-loop, it corrects the drift, so the data covers the states a
    learner's small errors lead to (the covariate shift of behaviour cloning)."""
    started = time.monotonic()
    rng = np.random.default_rng([noise_seed, 1])
    executed: list[np.ndarray] = []
    obs = env.start_episode(start)
    expert.begin_episode(slot, env.info.instruction, episode_key, env.layout)
    layout, sim = env.layout, env.sim_env
    robot = sim.robots[0]
    buf: dict[str, list] = {k: [] for k in ("actions", "states", "robot_states", "ee_pos", "ee_ori", "gripper_states",
                                            "joint_states", "agentview_rgb", "eye_in_hand_rgb", "privileged")}
    success = False
    for _ in range(env.max_steps):
        p = obs["privileged"]
        eef_pos, eef_quat = layout.get(p, "eef_pos"), layout.get(p, "eef_quat")
        gripper = layout.get(p, "gripper_qpos")
        buf["states"].append(env.get_sim_state())
        buf["robot_states"].append(np.concatenate([gripper, eef_pos, eef_quat]))
        buf["ee_pos"].append(eef_pos.copy())
        buf["ee_ori"].append(_axis_angle(eef_quat))
        buf["gripper_states"].append(gripper.copy())
        buf["joint_states"].append(np.asarray(sim.sim.data.qpos[robot._ref_joint_pos_indexes]).copy())
        if "image" in obs:
            buf["agentview_rgb"].append(obs["image"])
        if "wrist" in obs:
            buf["eye_in_hand_rgb"].append(obs["wrist"])
        if privileged:
            buf["privileged"].append(p.astype(np.float32))
        action = expert.act({k: v[None] for k, v in obs.items()}, [env.info.instruction], [slot]).actions[0]
        buf["actions"].append(np.asarray(action, dtype=np.float64))
        if action_noise > 0:
            action = perturb(action, action_noise, rng)
        executed.append(np.asarray(action, dtype=np.float64))
        obs, success = env.step(action)
        if success or env.finished:
            break
    t = len(buf["actions"])
    rewards = np.zeros(t, dtype=np.uint8)
    dones = np.zeros(t, dtype=np.uint8)
    if success:
        rewards[-1] = dones[-1] = 1
    ee_pos, ee_ori = np.stack(buf["ee_pos"]), np.stack(buf["ee_ori"])
    obs_out = {
        "ee_pos": ee_pos, "ee_ori": ee_ori, "ee_states": np.concatenate([ee_pos, ee_ori], axis=1),
        "gripper_states": np.stack(buf["gripper_states"]), "joint_states": np.stack(buf["joint_states"]),
    }
    for key in ("agentview_rgb", "eye_in_hand_rgb"):
        if buf[key]:
            obs_out[key] = np.stack(buf[key]).astype(np.uint8)
    if privileged:
        obs_out["privileged"] = np.stack(buf["privileged"])
    stage_index = expert.stage_log(slot)[:t]
    transitions = expert.transitions(slot)
    stage_names = [f"{d['skill']}/{st}" for d in expert.plan(slot) for st in d["stages"]]
    demo = Demo(
        actions=np.stack(buf["actions"]), states=np.stack(buf["states"]), rewards=rewards, dones=dones,
        obs=obs_out, robot_states=np.stack(buf["robot_states"]), stage_index=stage_index,
        attrs={"stage_transitions": json.dumps(transitions), "stage_names": json.dumps(stage_names),
               "success": int(success), "action_noise": float(action_noise),
               "fixture_names": json.dumps(list(start.fixture_names)),
               "fixture_poses": np.asarray(start.fixture_poses, dtype=np.float64)},
        executed_actions=np.stack(executed) if action_noise > 0 else None,
    )
    return Recording(demo, bool(success), t, time.monotonic() - started, transitions, stage_names)
