"""`tgrpo-bench demos`: expert demonstrations from fresh placements (LIBERO HDF5 layout) and reference key poses."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.cli import UsageError, int_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True, help="libero_spatial|libero_object|libero_goal|libero_10 "
                        "or spatial|object|goal|long")
    parser.add_argument("--tasks", type=int_list, default=None, help="task ids, e.g. 0,3 (default: all 10)")
    parser.add_argument("--per-task", type=int, default=50, help="successful demos per task")
    parser.add_argument("--images", action="store_true",
                        help="render agentview and wrist images (the eval preprocessing); default state-only")
    parser.add_argument("--no-wrist", action="store_true", help="with --images: agentview only")
    parser.add_argument("--no-privileged", action="store_true", help="do not store obs/privileged")
    parser.add_argument("--workers", type=int, default=1, help="simulator processes (2 per 2 cores)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the placement sampler")
    parser.add_argument("--max-attempts-factor", type=float, default=2.0,
                        help="give a task up after per-task x this many attempts")
    parser.add_argument("--out", type=Path, default=Path("data/demos"), help="dataset root (default data/demos)")
    parser.add_argument("--keyposes", type=Path, default=None,
                        help="key-pose cache directory (default data/keyposes, or $TGRPO_KEYPOSES)")
    parser.add_argument("--episode-start", choices=("reset", "restore"), default="restore",
                        help="episode start after sampling the placement (restore is bit-identical and faster)")
    parser.add_argument("--action-noise", type=float, default=0.0,
                        help="std of Gaussian noise on the executed arm actions (noise injection); the recorded "
                             "actions stay the expert's labels (default 0: no noise)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _request(args):
    from tgrpo.data.generate import DemoRequest
    from tgrpo.envs.protocol import TASKS_PER_SUITE, check_task_ids, resolve_suite
    from tgrpo.rewards.keyposes import STAGE_POSE_ROOT

    try:
        suite = resolve_suite(args.suite)
        tasks = check_task_ids(args.tasks if args.tasks is not None else list(range(TASKS_PER_SUITE)))
        if args.per_task < 1:
            raise ValueError(f"--per-task must be at least 1, got {args.per_task}")
        if args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
        if args.max_attempts_factor < 1:
            raise ValueError("--max-attempts-factor must be at least 1")
        if not 0 <= args.action_noise <= 1:
            raise ValueError(f"--action-noise must be in [0, 1], got {args.action_noise}")
        if args.no_wrist and not args.images:
            raise ValueError("--no-wrist only applies with --images")
    except ValueError as err:
        raise UsageError(str(err)) from err
    for root in (args.out, args.keyposes or STAGE_POSE_ROOT):
        try:
            Path(root).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create {root}: {err}") from err
    return DemoRequest(suite=suite, task_ids=tuple(tasks), per_task=args.per_task, out_dir=args.out,
                       keypose_root=args.keyposes or STAGE_POSE_ROOT, images=args.images, wrist=not args.no_wrist,
                       privileged=not args.no_privileged, seed=args.seed, workers=args.workers,
                       max_attempts_factor=args.max_attempts_factor, episode_start=args.episode_start,
                       action_noise=args.action_noise)


def run(args: argparse.Namespace) -> int:
    from tgrpo.data.generate import generate
    from tgrpo.rewards.keyposes import stage_poses_path

    request = _request(args)
    summary = generate(request, progress=not args.no_progress)
    incomplete = {t: s for t, s in summary["tasks"].items() if not s.get("complete") and not s.get("skipped")}
    for t, s in sorted(summary["tasks"].items()):
        if s.get("skipped"):
            line = "already complete"
        elif s.get("complete"):
            line = f"{args.per_task} demos, {s['steps']} env-steps in {s['wall_s']:.0f}s"
        else:
            line = f"INCOMPLETE: {s.get('demos')} demos after {s.get('attempts')} attempts"
        print(f"task {t}: {line}")
    for t, err in sorted(summary["errors"].items()):
        print(f"task {t}: ERROR {err}")
    print(f"datasets: {Path(args.out) / request.suite}", file=sys.stderr)
    print(f"key poses: {stage_poses_path(request.suite, request.keypose_root)}", file=sys.stderr)
    print(json.dumps({"env_steps": summary["env_steps"], "wall_s": summary["wall_s"]}), file=sys.stderr)
    return 1 if (incomplete or summary["errors"]) else 0
