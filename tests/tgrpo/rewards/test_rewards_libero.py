"""Stage rewards on the real simulator: entity names against real layouts, the expert's demonstration, a rollout."""

import numpy as np
import pytest

from tgrpo.envs.libero_env import LiberoEnv, official_start
from tgrpo.envs.observation import ObsConfig
from tgrpo.envs.protocol import MAX_POLICY_STEPS, SUITES, Protocol
from tgrpo.rewards import StageReward, load_task_reward, rollout_rewards, sparse_rewards
from tgrpo.rewards.facts import task_facts
from tgrpo.rewards.store import load_spec

pytestmark = pytest.mark.libero
RESTORE = Protocol(episode_start="restore")


def _env(suite, task):
    return LiberoEnv(suite, task, ObsConfig(mode="state"), RESTORE)


def _check_task_against_env(suite, task):
    env = _env(suite, task)
    try:
        facts = task_facts(suite, task)
        layout = env.layout
        assert set(facts.entities) == set(layout.entities)
        assert facts.objects == layout.movable
        assert facts.goal_literals == layout.goal_literals
        spec = load_spec(suite, task, facts=facts, allow_failed=True)
        reward = StageReward(spec, layout)  # every name resolves in the real layout
        obs = env.start_episode(official_start(suite, task, 0))
        P = obs["privileged"][None, None]
        assert reward.stage_index(P).shape == (1, 1)
        assert np.isfinite(reward.terms(np.repeat(P, 2, axis=1)).rewards).all()
    finally:
        env.close()


@pytest.mark.parametrize("suite,task", [("libero_object", 0), ("libero_goal", 3), ("libero_10", 9)])
def test_facts_and_specs_match_real_layouts(suite, task):
    _check_task_against_env(suite, task)


@pytest.mark.slow
@pytest.mark.parametrize("suite", SUITES)
def test_every_committed_spec_compiles_against_its_real_layout(suite):
    for task in range(10):
        _check_task_against_env(suite, task)


def test_expert_demonstration_climbs_every_stage_in_order():
    experts = pytest.importorskip("tgrpo.experts")
    from tgrpo.rewards.validate import run_episode

    env = _env("libero_object", 0)
    try:
        reward = load_task_reward("libero_object", 0, env.layout, allow_failed=True)
        ep = run_episode(env, experts.ExpertPolicy(), official_start("object", 0, 0), env.max_steps,
                         "expert", 0)
    finally:
        env.close()
    assert ep.success
    stage = reward.stage_index(ep.privileged)
    assert (np.diff(stage) >= 0).all()
    assert stage[0] == 0 and stage[-1] == reward.num_stages
    assert sorted(set(stage.tolist())) == list(range(reward.num_stages + 1))  # no stage skipped
    # the last stage is LIBERO's success, step by step
    np.testing.assert_array_equal(stage[1:] == reward.num_stages, ep.done)
    terms = reward.terms(ep.privileged[None], ep.done[None])
    assert terms.bonus.sum() == 1.0 and terms.f1[0, -1] == 1.0


def test_rewards_of_a_group_rollout():
    from tgrpo.envs.rollout import group_rollout
    from tgrpo.envs.workers import EnvSpec, WorkerPool
    from tgrpo.policies.simple import RandomPolicy

    proto = Protocol(episode_start="restore", max_policy_steps={**MAX_POLICY_STEPS, "libero_object": 6})
    with WorkerPool(1) as pool:
        ro = group_rollout(pool, EnvSpec("libero_object", 0, ObsConfig(mode="state"), proto), RandomPolicy(0),
                           official_start("object", 0, 0))
    spec = load_spec("libero_object", 0, allow_failed=True)
    terms = rollout_rewards(ro, spec)
    assert terms.rewards.shape == ro.done.shape == (1, 6)
    assert terms.stage.shape == (1, 7)
    assert np.isfinite(terms.rewards).all() and (terms.f2 <= 0).all()
    assert sparse_rewards(ro.done, ro.mask).sum() == 0


def test_benchmark_reports_reward_and_simulation_time():
    from tgrpo.rewards.benchmark import run_benchmark

    spec = load_spec("libero_object", 0, allow_failed=True)
    out = run_benchmark("libero_object", 0, spec, n=2, m=15, repeats=3, policy="random")
    assert out["reward"]["shape"] == [2, 16, out["D"]]
    assert out["sim_steps"] == 15 and out["sim_step_ms_mean"] > 0
    assert out["reward_over_sim"] == pytest.approx(out["reward"]["per_step_ms"] / out["sim_step_ms_mean"])
