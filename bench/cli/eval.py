"""`tgrpo-bench eval`: success rates of a policy on LIBERO tasks under the pinned protocol."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

from bench.cli import UsageError, int_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="registered policy name (zero, random, ...)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint path for policies that load one")
    parser.add_argument("--unnorm-key", default=None,
                        help="openvla: action statistics key in the checkpoint (default: the suite name, then "
                        "its _no_noops variant, as OpenVLA's script)")
    parser.add_argument("--suite", required=True, help="libero_spatial|libero_object|libero_goal|libero_10 "
                        "or spatial|object|goal|long")
    parser.add_argument("--tasks", type=int_list, default=None, help="task ids, e.g. 0,3 (default: all 10)")
    parser.add_argument("--episodes", type=int, default=50, help="first N official init states per task (max 50)")
    parser.add_argument("--episode-ids", type=int_list, default=None, help="explicit init state indices 0..49")
    parser.add_argument("--obs", choices=("image", "state"), default="image", help="observation mode")
    parser.add_argument("--center-crop", action=argparse.BooleanOptionalAction, default=None,
                        help="90%% center crop (default: on for openvla, as OpenVLA's script; off otherwise)")
    parser.add_argument("--wrist", action="store_true", help="also render the wrist camera")
    parser.add_argument("--fast-render", action="store_true", help="MSAA and reflections off (different images)")
    parser.add_argument("--episode-start", choices=("reset", "restore"), default="reset",
                        help="reset: OpenVLA's env.reset()+set_init_state; restore: clean-up + set_init_state")
    parser.add_argument("--workers", type=int, default=2, help="simulator worker processes (2 per 2 cores)")
    parser.add_argument("--seed", type=int, default=0, help="policy seed (sampling policies)")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="0: greedy decoding (the protocol); > 0: sample actions at this temperature (diagnostic)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="threads of a torch policy (1: the simulator workers use the other cores)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default results/eval/...)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _request(args):
    from bench.evaluate import EvalRequest
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import (
        TASKS_PER_SUITE,
        Protocol,
        check_episode_count,
        check_episode_ids,
        check_task_ids,
        resolve_suite,
    )

    try:
        suite = resolve_suite(args.suite)
        tasks = check_task_ids(args.tasks if args.tasks is not None else list(range(TASKS_PER_SUITE)))
        if args.episode_ids is not None:
            episodes = check_episode_ids(args.episode_ids)
        else:
            episodes = check_episode_count(args.episodes)
        if args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        obs = ObsConfig(mode=args.obs, center_crop=bool(args.center_crop), wrist=args.wrist,
                        fast_render=args.fast_render)
        protocol = Protocol(episode_start=args.episode_start)
        if not (math.isfinite(args.temperature) and args.temperature >= 0):
            raise ValueError(f"--temperature must be a finite number >= 0 (0 = greedy), got {args.temperature}")
    except ValueError as err:
        raise UsageError(str(err)) from err
    out = args.out or Path("results/eval") / f"{args.policy}_{suite}_{args.obs}"
    return EvalRequest(suite, tuple(tasks), tuple(episodes), obs, out, protocol, args.workers, args.seed,
                       temperature=args.temperature)


def run(args: argparse.Namespace) -> int:
    from bench.results import OutputError, summary_table
    from bench.runs import run_eval
    from tgrpo.policies import make_policy
    from tgrpo.policies.trainable import TrainablePolicy

    request = _request(args)
    try:
        policy = make_policy(args.policy, seed=args.seed, checkpoint=args.checkpoint,
                             unnorm_key=args.unnorm_key or request.suite, center_crop=args.center_crop)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from err
    if policy.obs_mode == "image" and request.obs.mode != "image":
        raise UsageError(f"policy {args.policy!r} reads camera images: use --obs image (the default)")
    if args.center_crop is None and isinstance(policy, TrainablePolicy):  # the policy's own default
        request = replace(request, obs=replace(request.obs, center_crop=policy.obs_config().center_crop))
    if "torch" in sys.modules:  # a torch policy was loaded
        sys.modules["torch"].set_num_threads(args.torch_threads)
    try:
        record = run_eval(request, policy, progress=not args.no_progress)
    except OutputError as err:  # a different run, a corrupt run.json, an unwritable directory
        raise UsageError(str(err)) from err
    print(summary_table(record.summary))
    print(f"rows: {record.out_dir / 'episodes.jsonl'}", file=sys.stderr)
    return 0
