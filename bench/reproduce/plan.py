"""The stage graph of one reproduction: suite x profile x methods x tasks x seeds.

Per profile (`PROFILE_SETTINGS`): how many demonstrations, SFT epochs, evaluation episodes and which tasks by
default. Estimates use rates measured on the 2-core CPU of docs/training.md (LIBERO-Object, state variant), scaled
by the suite's horizon; they drive `--dry-run` and the ETA, never a result.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from bench.reproduce.settings import check_for_method, label, rl_kwargs
from bench.reproduce.store import Resources, Stage
from tgrpo.envs.protocol import INIT_STATES_PER_TASK, MAX_POLICY_STEPS, TASKS_PER_SUITE
from tgrpo.rl.methods import get_method, trains_per_task

# Measured on the 2-core CPU (docs/training.md): 500 demos in 36 min on 2 workers; 30 SFT epochs over 500 demos in
# 59 min; 500 greedy state episodes in 10-34 min; 100 RL iterations (N = 4) in 26-29 min + 7-11 min evaluation.
DEMO_S = 4.3
SFT_S_PER_DEMO_EPOCH = 0.24
EVAL_S_PER_EPISODE = 2.6
RL_S_PER_ITERATION = 17.0
# PPO's 4 x 4 policy and critic steps add about a fifth to an iteration of the tiny policy (docs/training.md, "Cost
# per iteration and the clip"); the other methods' updates are one step per group or per pair batch.
RL_COST_FACTOR = {"ppo": 1.2}
OBJECT_HORIZON = 280
# Worker spawn and env build per simulator stage; the smoke pipeline of LIBERO-10 took 35 s (demos), 62 s (SFT eval,
# 2 failing episodes of 520 steps) and 67-72 s (RL) with other jobs on both cores: 4 min 3 s in all.
STAGE_OVERHEAD_S = 30.0

# The tiny VLA's own sources: another policy added under tgrpo/policies/ does not invalidate its stages.
TINY_POLICY = tuple(f"tgrpo/policies/{name}.py" for name in ("base", "trainable", "tiny", "tiny_decode",
                                                             "action_tokenizer", "sampling"))
OPENVLA_POLICY = ("tgrpo/policies/openvla", *(f"tgrpo/policies/{name}.py" for name in ("base", "trainable",
                                                                                      "action_tokenizer", "sampling")))
# The SFT evaluation's torch threads, in its config (and key): the tiny policy uses 1, as the eval CLI and the RL
# loop's own evaluation do, so the simulator workers keep the other cores and stages side by side (--jobs) do not
# oversubscribe (two 2-thread policy processes beside 4 workers on 2 cores ran an episode 5x slower). OpenVLA keeps
# torch's default (its forward runs on the GPU).
EVAL_THREADS = {"tiny": {"torch_threads": 1}, "openvla": {}}
CODE = {  # what each stage's output depends on (its key covers these sources)
    "demos": ("tgrpo/experts", "tgrpo/envs", "tgrpo/data"),
    "sft": ("baselines/sft", *TINY_POLICY, "tgrpo/data/hdf5.py", "tgrpo/trainer_state.py"),
    "eval": ("bench/evaluate.py", "tgrpo/envs", *TINY_POLICY),
    "rl": ("tgrpo/rl", "tgrpo/advantages.py", "tgrpo/losses.py", "tgrpo/preference_losses.py", "tgrpo/rewards",
           *TINY_POLICY, "tgrpo/envs",
           "bench/evaluate.py", "bench/runs.py"),
}


@dataclass(frozen=True)
class TaskRule:
    """`--tasks auto[:N]`: the RL tasks are the N whose SFT success on the official states is nearest 50 % (room to
    move either way; ties to the lower id), decided from the suite's finished SFT evaluations before any RL stage
    (`bench.reproduce.pick_tasks`), so the rule is fixed before any RL result exists."""

    count: int = 3

    def __str__(self) -> str:
        return f"auto:{self.count}"


def parse_tasks(text: str) -> tuple[int, ...] | TaskRule:
    """`--tasks`: "1,6,8" or "auto[:N]" (`TaskRule`); ValueError for anything else."""
    text = text.strip()
    if text == "auto" or text.startswith("auto:"):
        count = text.partition(":")[2] or "3"
        if not count.isdigit() or not 1 <= int(count) <= TASKS_PER_SUITE:
            raise ValueError(f"--tasks auto:N needs N in 1..{TASKS_PER_SUITE}, got {text!r}")
        return TaskRule(int(count))
    try:
        tasks = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--tasks takes comma-separated task ids or auto[:N], got {text!r}") from None
    if not tasks:
        raise ValueError("--tasks names no task")
    return tasks


@dataclass(frozen=True)
class ProfileSettings:
    demos_per_task: int
    demo_tasks: str  # "all": SFT learns the whole suite; "rl": only the tasks RL trains (smoke)
    sft_epochs: int | None  # None: the SFT profile's default
    eval_episodes: int
    default_tasks: tuple[int, ...] | TaskRule
    default_methods: tuple[str, ...]
    default_seeds: tuple[int, ...]
    policy: str = "tiny"  # "openvla": no demos or SFT stages; the SFT policy is the released fine-tune (--checkpoint)


PROFILE_SETTINGS = {
    # smoke: every stage real and short (CI minutes): 2 demos of the RL task, 1 SFT epoch, 2 eval episodes.
    "smoke": ProfileSettings(2, "rl", None, 2, (0,), ("tgrpo", "grpo"), (0,)),
    # small: the tiny state policy on a CPU; the suite's SFT on 50 demos per task, evaluated on all 10 tasks x 50
    # states; TGRPO and GRPO, seeds 0 and 1, on the 3 tasks nearest 50 % SFT success (about 6 h of RL on LIBERO-Object
    # here; every method on every task would be 40 h and more).
    "small": ProfileSettings(50, "all", None, 50, TaskRule(3), ("tgrpo", "grpo"), (0, 1)),
    # paper: OpenVLA-7B; the released LIBERO fine-tune is the SFT policy (evaluated, then trained per task by RL).
    "paper": ProfileSettings(0, "none", None, 50, tuple(range(TASKS_PER_SUITE)), ("tgrpo", "grpo"), (0,),
                             policy="openvla"),
}
# What each stage asks of a cluster node (`--executor ray`, docs/scale-out.md), per profile and stage kind; the local
# executor ignores it. smoke: one CPU per stage, so a cluster of 1-CPU nodes (the test's) places every stage; small:
# the processes a stage keeps busy (2 demo workers, 2 evaluation workers; SFT is one torch thread); the tiny state
# policy needs no GPU. paper: one GPU per OpenVLA-7B stage (bfloat16 weights, 15 GB; a LoRA update peaks at up to
# 40 GB, docs/openvla.md). memory_gb, so that a node takes no more stages than its memory holds: smoke above the
# 1.46 GB peak resident memory measured for its pipeline (docs/scale-out.md); small and paper are unmeasured margins
# (small: 500 demonstrations and longer episodes; paper: the 15 GB checkpoint read through host memory).
RESOURCES = {
    "smoke": {kind: Resources(cpus=1, memory_gb=2) for kind in ("demos", "sft", "eval", "rl")},
    "small": {"demos": Resources(cpus=2, memory_gb=4), "sft": Resources(cpus=1, memory_gb=4),
              "eval": Resources(cpus=2, memory_gb=4), "rl": Resources(cpus=2, memory_gb=4)},
    "paper": {kind: Resources(cpus=4, gpus=1, memory_gb=32) for kind in ("eval", "rl")},
}
DEMO_ACTION_NOISE = 0.1  # noise injection (docs/training.md: DART-style labels; the committed SFT tables use it)


def build_plan(suite: str, profile: str, methods: tuple[str, ...] | None = None, tasks: tuple[int, ...] | None = None,
               seeds: tuple[int, ...] | None = None, settings: tuple[dict, ...] = ({},),
               checkpoint: Path | None = None, eval_episodes: int | None = None,
               sft_tasks: tuple[int, ...] | None = None) -> list[Stage]:
    """Stages in dependency order; one RL stage per (method, task, seed, setting), ordered by setting, seed, task,
    then method. `settings` are normalised RL overrides (`bench.reproduce.settings`). ValueError for an unknown
    method, a profile without settings, a bad task, or an OpenVLA profile without `checkpoint` (the released
    fine-tune it starts from). `eval_episodes` replaces the profile's evaluation episodes (the first N official
    states; a quick check, not the protocol). `sft_tasks`: the tasks whose SFT evaluation the plan holds (default:
    `tasks`). Tasks given by a `TaskRule` must be resolved first (`bench.reproduce.pick_tasks.resolve`) unless no
    method trains per task."""
    if profile not in PROFILE_SETTINGS:
        raise ValueError(f"profile {profile!r} has no reproduction settings in this build; valid: "
                         f"{', '.join(PROFILE_SETTINGS)}")
    p = PROFILE_SETTINGS[profile]
    if eval_episodes is not None:
        if not 1 <= eval_episodes <= INIT_STATES_PER_TASK:
            raise ValueError(f"--eval-episodes must be in 1..{INIT_STATES_PER_TASK}, got {eval_episodes}")
        p = replace(p, eval_episodes=eval_episodes)
    methods = tuple(methods or p.default_methods)
    for m in methods:
        get_method(m)
    tasks = p.default_tasks if tasks is None else tasks
    rl_methods = [m for m in methods if trains_per_task(m)]  # online RL and preference methods
    if isinstance(tasks, TaskRule):
        if p.demo_tasks == "rl":
            raise ValueError(f"--tasks {tasks} reads the SFT evaluation of every task, but the {profile} profile's SFT "
                             f"learns only the tasks RL trains: use the small or paper profile, or name the tasks")
        if rl_methods:
            raise ValueError(f"the RL tasks of --tasks {tasks} come from the finished SFT evaluations: resolve them "
                             f"first (bench.reproduce.pick_tasks.resolve)")
        tasks = tuple(range(TASKS_PER_SUITE))  # the SFT evaluations the rule reads
    tasks = tuple(tasks)
    seeds = tuple(p.default_seeds if seeds is None else seeds)
    horizon = MAX_POLICY_STEPS[suite] / OBJECT_HORIZON
    if p.policy == "openvla":
        plan, upstream, source = [], (), _openvla_source(profile, suite, checkpoint)
        code = {kind: (*(c for c in CODE[kind] if c not in TINY_POLICY), *OPENVLA_POLICY) for kind in ("eval", "rl")}
    else:
        plan, upstream, source, code = _tiny_sft(suite, profile, p, tasks, horizon)
    if "sft" in methods or rl_methods:  # one stage per task: another task selection reuses them
        plan.extend(Stage("eval", f"sft-{suite}-t{task}-{profile}", {"suite": suite, "tasks": [task],
                                                                     "episodes": p.eval_episodes, **source,
                                                                     **EVAL_THREADS[p.policy]},
                          upstream, code["eval"], STAGE_OVERHEAD_S + EVAL_S_PER_EPISODE * p.eval_episodes * horizon,
                          RESOURCES[profile]["eval"])
                    for task in (tasks if sft_tasks is None else sft_tasks))
    for setting in settings:
        rl_s = _rl_estimate_s(profile, suite, setting)
        for method in rl_methods:
            check_for_method(profile, method, setting)
        # seed-major, then task, then method: a run cut short holds paired comparisons (every method on the same
        # task and seed) before it holds more seeds of one method
        for seed in seeds:
            for task in tasks:
                for method in rl_methods:
                    config = {"method": method, "suite": suite, "task": task, "seed": seed, "profile": profile,
                              "eval_episodes": p.eval_episodes, **{k: v for k, v in source.items() if k != "obs"}}
                    if setting:  # absent for the defaults: their keys stay those of a run without settings
                        config["settings"] = setting
                    estimate_s = rl_s * RL_COST_FACTOR.get(method, 1.0) + EVAL_S_PER_EPISODE * p.eval_episodes * horizon
                    plan.append(Stage("rl", f"{method}-{suite}-t{task}-s{seed}-{profile}{label(setting)}", config,
                                      upstream, code["rl"], estimate_s, RESOURCES[profile]["rl"]))
    return plan


def _tiny_sft(suite: str, profile: str, p: ProfileSettings, tasks: tuple[int, ...], horizon: float):
    """The demos and SFT stages of the tiny policy: (plan so far, upstream stages, eval config, code per kind)."""
    demo_tasks = tuple(range(TASKS_PER_SUITE)) if p.demo_tasks == "all" else tasks
    demos = Stage("demos", suite, {"suite": suite, "tasks": list(demo_tasks), "per_task": p.demos_per_task,
                                    "action_noise": DEMO_ACTION_NOISE, "seed": 0, "episode_start": "restore"},
                  code=CODE["demos"],
                  estimate_s=STAGE_OVERHEAD_S + DEMO_S * p.demos_per_task * len(demo_tasks) * horizon,
                  resources=RESOURCES[profile]["demos"])
    sft = Stage("sft", f"{suite}-{profile}", {"suite": suite, "profile": profile, "variant": "state",
                                               "epochs": p.sft_epochs, "seed": 0},
                (demos,), CODE["sft"],
                SFT_S_PER_DEMO_EPOCH * p.demos_per_task * len(demo_tasks) * (p.sft_epochs or _sft_epochs(profile)),
                RESOURCES[profile]["sft"])
    return [demos, sft], (sft,), {"obs": "state"}, CODE


def _openvla_source(profile: str, suite: str, checkpoint: Path | None) -> dict:
    """What the OpenVLA stages read: the released fine-tune, identified by its config.json and safetensors index
    (hashing 15 GB of weights per plan would take minutes). ValueError without a checkpoint directory."""
    if checkpoint is None:
        raise ValueError(f"profile {profile!r} starts from a released OpenVLA fine-tune: give --checkpoint DIR "
                         f"(e.g. openvla-7b-finetuned-{suite.replace('_', '-')}; docs/openvla.md)")
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors.index.json"):
        try:
            digest.update((Path(checkpoint) / name).read_bytes())
        except OSError:
            raise ValueError(f"--checkpoint {checkpoint} is not an OpenVLA checkpoint directory (no {name})") from None
    return {"obs": "image", "policy": "openvla", "checkpoint": str(Path(checkpoint).absolute()),
            "checkpoint_id": digest.hexdigest()}


def _sft_epochs(profile: str) -> int:
    from baselines.sft.config import SFTConfig, for_profile

    return for_profile(profile, suite="libero_object", demos_dir=".", out_dir=".").epochs or SFTConfig.epochs


def _rl_estimate_s(profile: str, suite: str, setting: dict) -> float:
    """Training time of one RL stage: the measured rate (N = 4, one update per rollout) scaled by the setting's
    iterations, horizon and group size (the rollout dominates; the cost of extra updates is not modelled)."""
    from tgrpo.rl.config import for_profile

    cfg = for_profile(profile, method="tgrpo", suite=suite, task_id=0, init_checkpoint=".", out_dir=".",
                      **rl_kwargs(profile, setting))
    horizon = (cfg.max_steps or MAX_POLICY_STEPS[suite]) / OBJECT_HORIZON
    return STAGE_OVERHEAD_S + RL_S_PER_ITERATION * cfg.iterations * horizon * cfg.group_size / 4
