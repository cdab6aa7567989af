"""A real LIBERO env per suite: build, restore official init states, step, observe; determinism of episodes."""

import numpy as np
import pytest

from tgrpo.envs.libero_env import EpisodeFinished, LiberoEnv, official_init_states, task_info
from tgrpo.envs.observation import ObsConfig
from tgrpo.envs.protocol import MAX_POLICY_STEPS, Protocol

pytestmark = pytest.mark.libero
STATE = ObsConfig(mode="state")


@pytest.mark.parametrize("suite,task_id,k", [("libero_spatial", 5, 7), ("libero_object", 2, 0),
                                             ("libero_goal", 9, 49), ("libero_10", 1, 3)])
def test_every_suite_restores_init_state_k_and_steps(suite, task_id, k):
    states = official_init_states(suite, task_id)
    assert states.shape[0] == 50
    env = LiberoEnv(suite, task_id, STATE, Protocol(num_wait_steps=0))
    try:
        env.start_episode(states[k])
        # with no wait steps the simulator holds exactly the official state (index 0 is the sim time)
        np.testing.assert_array_equal(env.get_sim_state()[1:], states[k][1:])
        assert env.max_steps == MAX_POLICY_STEPS[suite]
        start = env.layout.get(env.get_privileged(), "eef_pos").copy()
        for _ in range(8):
            obs, done = env.step(np.array([1.0, 0, 0, 0, 0, 0, -1.0]))
        moved = env.layout.get(obs["privileged"], "eef_pos") - start
        # a full +x action moves the end effector about 1.25 cm a step at steady state (PROTOCOL.md section 5)
        assert moved[0] > 0.04 and abs(moved[1]) < 0.02
        assert not done
        goals = [env.layout.get(obs["privileged"], f"goal/{i}")[0] for i in range(len(env.layout.goal_literals))]
        assert goals and not all(goals)  # an official start state is not solved
        assert obs["state"].dtype == np.float32 and obs["state"].ndim == 1
    finally:
        env.close()


def test_instruction_is_task_language():
    info = task_info("object", 0)
    assert info.instruction == "pick up the alphabet soup and place it in the basket"


def test_stepping_a_finished_episode_raises():
    protocol = Protocol(max_policy_steps={**MAX_POLICY_STEPS, "libero_object": 3}, episode_start="restore")
    env = LiberoEnv("object", 0, STATE, protocol)
    try:
        env.start_episode(official_init_states("object", 0)[0])
        for _ in range(3):
            env.step(np.zeros(7))
        assert env.finished
        with pytest.raises(EpisodeFinished):
            env.step(np.zeros(7))
    finally:
        env.close()


def _final_states(episode_start: str, repeats: int = 2) -> list[np.ndarray]:
    actions = np.random.default_rng(0).uniform(-1, 1, (25, 7))
    env = LiberoEnv("object", 0, STATE, Protocol(episode_start=episode_start))
    out = []
    try:
        for _ in range(repeats):
            env.start_episode(official_init_states("object", 0)[3])
            for a in actions:
                env.step(a)
            out.append(env.get_sim_state())
    finally:
        env.close()
    return out


def test_repeated_episodes_are_bit_identical_in_both_start_modes():
    reset_runs = _final_states("reset")
    restore_runs = _final_states("restore")
    for state in reset_runs[1:] + restore_runs:
        np.testing.assert_array_equal(state, reset_runs[0])


def test_image_observation_shapes_and_wrist_camera():
    env = LiberoEnv("goal", 0, ObsConfig(mode="image", wrist=True), Protocol(num_wait_steps=1))
    try:
        obs = env.start_episode(official_init_states("goal", 0)[0])
        for key in ("image", "wrist"):
            assert obs[key].shape == (224, 224, 3) and obs[key].dtype == np.uint8
            assert obs[key].std() > 10  # a real scene, not a blank frame
        assert not np.array_equal(obs["image"], obs["wrist"])
    finally:
        env.close()


@pytest.mark.xfail(strict=True, reason="known defect (issue 2 note, docs/protocol.md 'Fixture placement'): LIBERO "
                   "places fixtures (cabinet, stove, rack) in the model at reset(); the official init states do not "
                   "hold them, so an episode's fixtures depend on the worker's history")
def test_fixture_placement_is_a_function_of_the_episode():
    """The same official init state must see the same scene whatever the worker ran before it."""
    init = official_init_states("libero_goal", 7)[0]

    def fixtures(env):
        model = env.sim_env.sim.model  # re-read: a hard reset rebuilds the model
        return np.array([model.body_pos[model.body_name2id(f.root_body)] for f in env.sim_env.fixtures_dict.values()])

    env = LiberoEnv("libero_goal", 7, STATE, Protocol(episode_start="restore"))
    try:
        env.start_episode(init)
        first = fixtures(env)
        env.sample_init_state(123)  # a training placement in between, as in RL workers
        env.start_episode(init)
        np.testing.assert_array_equal(fixtures(env), first)
    finally:
        env.close()
