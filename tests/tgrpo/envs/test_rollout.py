"""Lock-step group rollout on the real simulator: the group stops on LIBERO's own success, crashes are failures."""

import dataclasses
import os
import signal

import numpy as np
import pytest

from tgrpo.envs.libero_env import EpisodeStart, LiberoEnv, official_start
from tgrpo.envs.observation import ObsConfig
from tgrpo.envs.protocol import MAX_POLICY_STEPS, Protocol
from tgrpo.envs.rollout import group_rollout
from tgrpo.envs.workers import EnvSpec, WorkerPool
from tgrpo.policies import make_policy
from tgrpo.policies.simple import ZeroPolicy

pytestmark = pytest.mark.libero
HORIZON = 15
PROTOCOL = Protocol(episode_start="restore", max_policy_steps={**MAX_POLICY_STEPS, "libero_object": HORIZON})
SPEC = EnvSpec("libero_object", 0, ObsConfig(mode="state"), PROTOCOL)


def _soup_thrown_into_basket() -> tuple[EpisodeStart, int]:
    """An official start state with the soup launched upwards above the basket, and the first step (0-based)
    on which LIBERO's own check reports success when nothing else moves, found by stepping a plain env."""
    start = official_start("object", 0, 0)
    state = start.state.copy()
    env = LiberoEnv("object", 0, ObsConfig(mode="state"), PROTOCOL)
    try:
        sim = env.sim_env
        joint = sim.get_object("alphabet_soup_1").joints[0]
        qpos, _ = sim.sim.model.get_joint_qpos_addr(joint)
        qvel, _ = sim.sim.model.get_joint_qvel_addr(joint)
        env.start_episode(start)
        region = sim.object_states_dict["basket_1_contain_region"].get_geom_state()["pos"]
        state[1 + qpos:1 + qpos + 3] = region + np.array([0.0, 0.0, 0.3])
        state[1 + sim.sim.model.nq + qvel + 2] = 4.0  # m/s upwards: it lands in the basket a few steps later
        thrown = dataclasses.replace(start, state=state)
        env.start_episode(thrown)
        for t in range(HORIZON):
            _, done = env.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
            if done:
                assert sim._check_success()  # LIBERO's own success check agrees with `done`
                return thrown, t
    finally:
        env.close()
    raise AssertionError("the thrown soup never landed in the basket")


@pytest.fixture(scope="module")
def thrown():
    return _soup_thrown_into_basket()


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(2) as p:
        yield p


def test_group_stops_every_worker_on_the_step_one_succeeds(pool, thrown):
    thrown_state, success_step = thrown
    assert 0 < success_step < HORIZON - 1
    r = group_rollout(pool, SPEC, ZeroPolicy(), [official_start("object", 0, 0), thrown_state], stop_rule="group")
    assert r.length.tolist() == [success_step + 1] * 2
    assert r.success.tolist() == [False, True]
    assert r.done[1].nonzero()[0].tolist() == [success_step]
    assert r.mask.all() and r.errors == [None, None]
    goal = r.layout.slices["goal/0"][0]
    assert r.privileged[1, -1, goal] == 1.0 and r.privileged[0, -1, goal] == 0.0
    assert r.actions.shape == (2, success_step + 1, 7) and r.obs["state"].shape[:2] == (2, success_step + 1)
    assert r.privileged.shape[:2] == (2, success_step + 2)


def test_independent_termination_masks_finished_trajectories(pool, thrown):
    thrown_state, success_step = thrown
    r = group_rollout(pool, SPEC, ZeroPolicy(), [official_start("object", 0, 0), thrown_state],
                      stop_rule="independent")
    assert r.length.tolist() == [HORIZON, success_step + 1]
    assert r.mask[1, success_step + 1:].sum() == 0 and r.mask[0].all()
    assert r.success.tolist() == [False, True]


def test_shared_start_gives_identical_trajectories_for_identical_actions(pool):
    r = group_rollout(pool, SPEC, ZeroPolicy(), official_start("object", 0, 4), max_steps=5)
    np.testing.assert_array_equal(r.privileged[0], r.privileged[1])


class _KillWorkerAt(ZeroPolicy):
    def __init__(self, pool, step):
        self.pool, self.step, self.calls = pool, step, 0

    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0):
        if self.calls == self.step:
            os.kill(self.pool.workers[0].pid, signal.SIGKILL)
        self.calls += 1
        return super().act(obs, instructions, slots, mode, temperature)


def test_a_killed_worker_is_a_recorded_failure_and_is_replaced(pool):
    old_pid = pool.workers[0].pid
    r = group_rollout(pool, SPEC, _KillWorkerAt(pool, 3), official_start("object", 0, 1), stop_rule="group")
    assert "crashed" in r.errors[0] and r.errors[1] is None
    assert r.length.tolist() == [3, HORIZON]
    assert not r.success[0]
    assert pool.workers[0].pid != old_pid and pool.workers[0].process.is_alive()
    again = group_rollout(pool, SPEC, make_policy("zero"), official_start("object", 0, 1), max_steps=2)
    assert again.errors == [None, None]
