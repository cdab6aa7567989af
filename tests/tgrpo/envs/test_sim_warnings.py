"""MuJoCo's warnings on the real simulator: an unstable simulation is recorded with its kind and first step (in
the env, in a group rollout), an ordinary episode records none, and summaries count such episodes."""

import dataclasses

import mujoco
import numpy as np
import pytest

from bench.results import summarize, summary_table
from tgrpo.envs.libero_env import SIM_WARNINGS, LiberoEnv, official_start
from tgrpo.envs.observation import ObsConfig
from tgrpo.envs.protocol import MAX_POLICY_STEPS, Protocol
from tgrpo.envs.rollout import group_rollout
from tgrpo.envs.workers import EnvSpec, WorkerPool
from tgrpo.policies.simple import ZeroPolicy

PROTOCOL = Protocol(episode_start="restore", max_policy_steps={**MAX_POLICY_STEPS, "libero_object": 6})
ZERO = np.zeros(7)


def test_warning_kinds_are_mujocos_in_its_order():
    n = int(mujoco.mjtWarning.mjNWARNING)
    assert SIM_WARNINGS == tuple(mujoco.mjtWarning(i).name.removeprefix("mjWARN_") for i in range(n))


@pytest.mark.libero
def test_an_unstable_simulation_is_recorded_with_its_kind_and_first_step():
    env = LiberoEnv("object", 0, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    try:
        env.start_episode(official_start("object", 0, 0))
        for _ in range(env.max_steps):  # an ordinary episode, to the suite's step limit
            env.step(ZERO)
        assert env.sim_warnings == {}

        env.start_episode(official_start("object", 0, 1))
        for _ in range(3):
            env.step(ZERO)
        env.sim_env.sim.data.qvel[:] = 1e12  # enormous velocities: MuJoCo resets the state and runs on
        _, done = env.step(ZERO)
        assert env.sim_warnings == {"BADQVEL": 4} and not done
        for _ in range(5):
            env.step(ZERO)
        assert env.sim_warnings == {"BADQVEL": 4}  # the first step it appeared stays

        env.start_episode(official_start("object", 0, 1))
        assert env.sim_warnings == {}  # counters start again with each episode, in the same MjData
        env.sim_env.sim.model.opt.timestep = 10.0  # a perturbed option: the accelerations blow up
        env.step(ZERO)
        assert env.sim_warnings == {"BADQACC": 1}
    finally:
        env.close()


@pytest.mark.libero
def test_a_group_rollout_reports_each_trajectorys_warnings():
    start = official_start("object", 0, 2)
    state = start.state.copy()
    state[-5:] = 1e12  # the last velocities of the flattened (time, qpos, qvel) state
    hostile = dataclasses.replace(start, state=state)
    with WorkerPool(2) as pool:
        spec = EnvSpec("libero_object", 0, ObsConfig(mode="state"), PROTOCOL)
        rollout = group_rollout(pool, spec, ZeroPolicy(), [start, hostile], mode="greedy")
    assert rollout.sim_warnings == [{}, {"BADQVEL": 0}]  # 0: during the start's wait steps
    assert rollout.length.tolist() == [6, 6] and not rollout.success.any() and rollout.errors == [None, None]


def _row(episode, sim_warnings):
    return {"suite": "libero_object", "task_id": 0, "task_name": "t", "episode": episode, "success": False,
            "steps": 280, "error": None, "sim_warnings": sim_warnings}


def test_summaries_count_episodes_with_warnings():
    rows = [_row(0, {}), _row(1, {"BADQACC": 17}), _row(2, {"BADQVEL": 3, "BADQACC": 3}), _row(3, None)]
    rows.append({k: v for k, v in _row(4, None).items() if k != "sim_warnings"})  # a row of an older run
    summary = summarize(rows)
    assert summary["tasks"][0]["sim_warnings"] == 2 and summary["suites"]["libero_object"]["sim_warnings"] == 2
    header, _, task_line, _suite_line = summary_table(summary).splitlines()
    assert header.split("|")[-2].strip() == "sim warnings" and task_line.split("|")[-2].strip() == "2"
