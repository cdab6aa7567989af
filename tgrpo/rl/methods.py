"""Training methods and profiles by name: the one list the CLI, the configs and the harness derive from.

A method is a family (how it trains: ``rl``, the online loop of `tgrpo.rl.loop`; ``preference``, rounds of
collected preference pairs in `tgrpo.rl.preference`; ``sft``, behaviour cloning in `baselines.sft`) plus, for
online RL, its advantage estimator (`tgrpo.advantages`), its reward and its policy loss (`tgrpo.losses`); for
preference methods, its pairing rule (`tgrpo.rl.pairs`) and its preference loss (`tgrpo.preference_losses`).
New baselines register here by name; nothing else lists methods.
"""

from __future__ import annotations

from dataclasses import dataclass

from tgrpo.registry import Registry

PROFILES: tuple[str, ...] = ("smoke", "small", "paper")
FAMILIES = ("rl", "preference", "sft")
REWARDS = ("dense", "sparse")


@dataclass(frozen=True)
class MethodSpec:
    """One method. estimator / reward / policy_loss / pairing are registry names (None where the family has none;
    a preference method's policy_loss names a preference loss, its pairing a `tgrpo.rl.pairs` rule); value_loss
    names a critic's loss (`tgrpo.losses.VALUE_LOSSES`) for methods that train a critic (`tgrpo.rl.critic`), else
    None. overrides: (field, value) pairs of its run config (`RLConfig`, or `PreferenceConfig` for a preference
    method) this method changes from the defaults (an explicit value still wins), each explained where the method
    is registered."""

    name: str
    family: str
    estimator: str | None = None
    reward: str | None = None
    policy_loss: str | None = None
    summary: str = ""
    value_loss: str | None = None
    overrides: tuple[tuple[str, object], ...] = ()
    pairing: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"method {self.name!r}: unknown family {self.family!r}; valid: {', '.join(FAMILIES)}")
        if self.family == "rl" and (self.estimator is None or self.reward not in REWARDS or not self.policy_loss):
            raise ValueError(f"method {self.name!r}: an rl method names an estimator, a reward "
                             f"({', '.join(REWARDS)}) and a policy loss")
        if self.family == "preference" and not (self.pairing and self.policy_loss):
            raise ValueError(f"method {self.name!r}: a preference method names a pairing rule and a loss")


METHODS: Registry[MethodSpec] = Registry("method")


def register_method(spec: MethodSpec) -> MethodSpec:
    return METHODS.add(spec.name, spec)


def method_names(family: str | None = None) -> tuple[str, ...]:
    """Registered names in registration order, optionally of one family."""
    return tuple(name for name in METHODS if family is None or METHODS.get(name).family == family)


def get_method(name: str, family: str | None = None) -> MethodSpec:
    """The spec registered under `name` (of `family`, if given); ValueError naming the valid choices otherwise."""
    if name not in method_names(family):
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(method_names(family))}")
    return METHODS.get(name)


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    return profile


def trains_per_task(name: str) -> bool:
    """Online methods (RL and preference) train one policy per task from the SFT policy; SFT trains per suite."""
    return get_method(name).family != "sft"


register_method(MethodSpec("sft", "sft", summary="behaviour cloning on expert demonstrations (the RL start)"))
# GRPO is the standard baseline: trajectory-level advantage on the sparse 0/1 success reward. The ablations keep
# TGRPO's dense reward and drop one advantage level (the paper's ablation table).
register_method(MethodSpec("tgrpo", "rl", "tgrpo", "dense", "clip-k3", "step + trajectory advantage, dense reward"))
register_method(MethodSpec("grpo", "rl", "grpo", "sparse", "clip-k3", "trajectory advantage, 0/1 success"))
register_method(MethodSpec("tgrpo-no-step", "rl", "tgrpo-no-step", "dense", "clip-k3", "ablation: a1 = 0"))
register_method(MethodSpec("tgrpo-no-traj", "rl", "tgrpo-no-traj", "dense", "clip-k3", "ablation: a2 = 0"))
# PPO with a critic (the comparison the paper lacks): TGRPO's dense reward, loss and lock-step groups, with GAE
# advantages from a learned critic instead of the group's z-scores (docs/training.md, "PPO"). 4 epochs x 4
# minibatches are PPO2's defaults (noptepochs, nminibatches): more than one step per rollout, so the clip acts.
register_method(MethodSpec("ppo", "rl", "gae", "dense", "clip-k3", "GAE from a learned critic, dense reward",
                           value_loss="clip-mse", overrides=(("epochs", 4), ("minibatches", 4))))
# Preference baselines (the paper's OpenVLA-DPO and GRAPE rows): trajectory log-likelihoods, sigmoid loss against
# the SFT reference; they differ in how a group of rollouts from one start becomes pairs. DPO is offline (one round
# of the SFT policy's rollouts); GRAPE is iterative: the same 400 trajectories as 4 rounds of 25 groups, re-collected
# with the updated policy (`tgrpo.rl.preference_config`).
register_method(MethodSpec("dpo", "preference", policy_loss="sigmoid", pairing="success",
                           summary="DPO on trajectories: success over failure from one start"))
register_method(MethodSpec("grape", "preference", policy_loss="sigmoid", pairing="cost",
                           summary="GRAPE: TPO over rounds, pairs ranked by a stage-spec cost",
                           overrides=(("rounds", 4), ("groups_per_round", 25))))
