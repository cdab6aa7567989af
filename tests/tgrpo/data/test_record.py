"""Noise injection while recording: hand-computed perturbation, and on the real simulator the recorded states are
the ones the executed (perturbed) actions produce, while `actions` keep the expert's labels."""

import numpy as np
import pytest

from tgrpo.data.record import perturb


def test_perturb_adds_clipped_noise_to_the_arm_and_keeps_the_gripper():
    action = np.array([0.0, 0.5, -0.99, 0.2, 0.0, 0.98, 1.0])
    noise = np.random.default_rng(7).normal(0.0, 0.1, 6)
    out = perturb(action, 0.1, np.random.default_rng(7))
    np.testing.assert_allclose(out[:6], np.clip(action[:6] + noise, -1, 1))
    assert out[6] == 1.0 and action[6] == 1.0 and out is not action
    np.testing.assert_array_equal(perturb(action, 0.0, np.random.default_rng(0)), action)


@pytest.mark.libero
def test_noisy_demo_replays_from_its_executed_actions():
    from tgrpo.data.record import fresh_start, record_episode
    from tgrpo.envs.libero_env import LiberoEnv, official_init_states
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol
    from tgrpo.experts import ExpertPolicy

    env = LiberoEnv("libero_object", 0, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    try:
        init, seed = fresh_start(env, 11, official_init_states("libero_object", 0))
        rec = record_episode(env, ExpertPolicy(), init, action_noise=0.05, noise_seed=seed)
        demo = rec.demo
        t = min(len(demo), 60)
        diff = demo.executed_actions[:t] - demo.actions[:t]
        assert np.all(diff[:, 6] == 0) and 0.02 < diff[:, :6].std() < 0.08
        env.start_episode(init)
        for k in range(t - 1):  # the state before action k+1 is where the executed actions 0..k lead
            env.step(demo.executed_actions[k])
            np.testing.assert_allclose(env.get_sim_state(), demo.states[k + 1], atol=1e-9)
    finally:
        env.close()
