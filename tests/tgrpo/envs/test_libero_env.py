"""A real LIBERO env per suite: build, restore official init states, step, observe; determinism of episodes."""

import numpy as np
import pytest

from tgrpo.envs.libero_env import EpisodeFinished, LiberoEnv, official_init_states, official_start, task_info
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
        env.start_episode(official_start(suite, task_id, k))
        # with no wait steps the simulator holds exactly the official state (index 0 is the sim time)
        np.testing.assert_array_equal(env.get_sim_state()[1:], states[k][1:])
        assert env.max_steps == MAX_POLICY_STEPS[suite]
        start = env.layout.get(env.get_privileged(), "eef_pos").copy()
        for _ in range(8):
            obs, done = env.step(np.array([1.0, 0, 0, 0, 0, 0, -1.0]))
        moved = env.layout.get(obs["privileged"], "eef_pos") - start
        # a full +x action: about 1.25 cm a step at steady state (docs/protocol.md, "Controller response")
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
        env.start_episode(official_start("object", 0, 0))
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
            env.start_episode(official_start("object", 0, 3))
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
        obs = env.start_episode(official_start("goal", 0, 0))
        for key in ("image", "wrist"):
            assert obs[key].shape == (224, 224, 3) and obs[key].dtype == np.uint8
            assert obs[key].std() > 10  # a real scene, not a blank frame
        assert not np.array_equal(obs["image"], obs["wrist"])
    finally:
        env.close()


def _fixtures(env) -> np.ndarray:
    """Model positions of every fixture's root body (re-read: a hard reset rebuilds the model)."""
    sim = env if hasattr(env, "fixtures_dict") else env.sim_env
    model = sim.sim.model
    return np.array([model.body_pos[model.body_name2id(f.root_body)] for f in sim.fixtures_dict.values()])


def test_fixture_placement_is_a_function_of_the_episode():
    """The same official episode sees the same scene whatever the worker ran before it, in both start modes."""
    env = LiberoEnv("libero_goal", 7, STATE, Protocol(episode_start="restore"))
    other = LiberoEnv("libero_goal", 7, STATE, Protocol(episode_start="reset"))
    try:
        env.start_episode(official_start("goal", 7, 0))
        first = _fixtures(env)
        env.sample_start(123)  # a training placement in between, as in RL workers
        env.start_episode(official_start("goal", 7, 2))
        assert np.abs(_fixtures(env) - first).max() > 1e-3  # another episode, other fixture placements
        env.start_episode(official_start("goal", 7, 0))
        np.testing.assert_array_equal(_fixtures(env), first)
        other.start_episode(official_start("goal", 7, 0))  # a reset-mode worker draws, then sets episode 0's
        np.testing.assert_array_equal(_fixtures(other), first)
    finally:
        env.close()
        other.close()


def test_a_training_placement_is_a_function_of_its_seed():
    """LIBERO-10 task 8 (a stove knob whose angle LIBERO samples): the same seed places the same scene in a fresh
    env and in one that sampled other placements before (LIBERO's own reset drew once more per earlier reset)."""
    fresh = LiberoEnv("libero_10", 8, STATE, Protocol(episode_start="restore"))
    used = LiberoEnv("libero_10", 8, STATE, Protocol(episode_start="restore"))
    try:
        expected = fresh.sample_start(5)
        used.sample_start(1)
        assert np.abs(used.sample_start(2).state - expected.state).max() > 1e-3  # another seed, another scene
        again = used.sample_start(5)
        np.testing.assert_array_equal(again.state, expected.state)
        np.testing.assert_array_equal(again.fixture_poses, expected.fixture_poses)
    finally:
        fresh.close()
        used.close()


def test_official_episodes_reproduce_openvlas_sequential_run():
    """OpenVLA's script, transcribed: build the rendering env, seed(0), then per episode reset(),
    set_init_state(k), 10 wait steps, then the policy's actions. Our episode 1 must reach the bit-identical
    simulator state, with the same fixtures, whether started in a fresh `reset`-mode env or in a `restore`-mode
    env that ran another episode and a training placement before."""
    from libero.libero.envs import OffScreenRenderEnv

    init = official_init_states("goal", 7)
    actions = np.random.default_rng(0).uniform(-1, 1, (15, 7))
    ovla = OffScreenRenderEnv(bddl_file_name=task_info("goal", 7).bddl_file, camera_heights=256, camera_widths=256)
    try:
        ovla.seed(0)
        for k in range(2):
            ovla.reset()
            ovla.set_init_state(init[k])
            for _ in range(10):
                ovla.step([0, 0, 0, 0, 0, 0, -1])
        for a in actions:
            ovla.step(a)
        expected_state, expected_fixtures = np.asarray(ovla.get_sim_state()), _fixtures(ovla.env)
    finally:
        ovla.close()
    for mode in ("reset", "restore"):
        ours = LiberoEnv("libero_goal", 7, STATE, Protocol(episode_start=mode))
        try:
            if mode == "restore":  # a worker with a history
                ours.start_episode(official_start("goal", 7, 3))
                for a in actions[::-1]:
                    ours.step(a)
                ours.sample_start(5)
            ours.start_episode(official_start("goal", 7, 1))
            for a in actions:
                ours.step(a)
            np.testing.assert_array_equal(_fixtures(ours), expected_fixtures)
            np.testing.assert_array_equal(ours.get_sim_state(), expected_state, err_msg=mode)
        finally:
            ours.close()


def test_an_episode_start_of_another_task_is_refused():
    env = LiberoEnv("libero_goal", 7, STATE, Protocol(episode_start="restore"))
    try:
        with pytest.raises(ValueError, match="places"):
            env.start_episode(official_start("object", 0, 0))  # no fixtures placed there, three here
        with pytest.raises(TypeError, match="EpisodeStart"):
            env.start_episode(official_init_states("goal", 7)[0])  # a bare state would keep stale fixtures
    finally:
        env.close()
