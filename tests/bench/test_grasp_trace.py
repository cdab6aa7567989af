"""The grasp trace on the real simulator: the scripted expert's episode reads as a grasp, lift and release; a policy
that never moves reads as no grasp, no lift, to the horizon; a brief close is not the grasp; the CLI writes its rows
and refuses bad input with a message."""

import json

import numpy as np
import pytest

from bench.diagnostics.grasp_trace import main, target_object, trace_episode
from tgrpo.envs.libero_env import LiberoEnv
from tgrpo.envs.observation import ObsConfig
from tgrpo.envs.protocol import MAX_POLICY_STEPS, Protocol
from tgrpo.experts import ExpertPolicy
from tgrpo.policies.base import Policy, PolicyOutput
from tgrpo.policies.simple import ZeroPolicy

pytestmark = pytest.mark.libero


class BlinkThenClose(Policy):
    """Arm still; gripper closed at steps 5-7 (a blink, opened again), then closed from step 20 on."""

    def begin_episode(self, slot, instruction, episode_key=(), layout=None):
        self.t = 0

    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0):
        action = np.zeros((1, 7))
        action[0, 6] = 1.0 if 5 <= self.t <= 7 or self.t >= 20 else -1.0
        self.t += 1
        return PolicyOutput(action, np.zeros((1, 7), np.int64), np.zeros((1, 7), np.float32))


@pytest.fixture(scope="module")
def env():
    short = Protocol(episode_start="restore", max_policy_steps={**MAX_POLICY_STEPS, "libero_object": 150})
    env = LiberoEnv("libero_object", 8, ObsConfig(mode="state"), short)
    yield env
    env.close()


def test_the_target_is_the_goal_object(env):
    assert target_object(env.layout) == "chocolate_pudding_1"  # "pick up the chocolate pudding and place it ..."


def test_the_expert_grasps_at_the_object_lifts_it_and_lets_go(env):
    row = trace_episode(env, ExpertPolicy(), 0, "chocolate_pudding_1")
    assert row["success"] and row["steps"] < 150  # LIBERO's own check
    step, offset = row["grasp_close"]["step"], row["grasp_close"]["eef_minus_object_cm"]
    assert 10 < step < row["steps"] and max(abs(x) for x in offset) < 1.5  # closes at the object, not on the way
    assert row["max_lift_cm"] > 10  # carried over the basket's rim
    assert row["final_gripper_opening_m"] > 0.03  # released: the fingers are apart again


def test_a_still_policy_never_grasps_and_runs_to_the_horizon(env):
    row = trace_episode(env, ZeroPolicy(), 0, "chocolate_pudding_1")
    assert not row["success"] and row["steps"] == 150
    assert row["grasp_close"] is None and abs(row["max_lift_cm"]) < 0.5 and row["closed_still_frac"] == 0.0


def test_a_blink_of_the_gripper_is_not_the_grasp(env):
    row = trace_episode(env, BlinkThenClose(), 0, "chocolate_pudding_1")
    assert row["grasp_close"]["step"] == 20  # steps 5-7 closed only 3 steps, fewer than the 10 a close takes
    assert row["closed_still_frac"] == pytest.approx(round(133 / 150, 2))  # steps 5-7 and 20-149, arm still


def test_the_cli_writes_rows_and_refuses_bad_input(tmp_path, capsys):
    assert main(["--policy", "nope", "--suite", "object", "--task", "8"]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path / "missing"), "--suite", "object", "--task", "8"]) == 2
    assert "no tiny checkpoint" in capsys.readouterr().err
    out = tmp_path / "trace.jsonl"
    assert main(["--policy", "zero", "--suite", "object", "--task", "8", "--episodes", "0", "--out", str(out)]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["episode"] == 0 and row["object"] == "chocolate_pudding_1" and row["steps"] == 280  # the protocol's
