"""`tgrpo-bench train`: SFT per suite, or an online RL method per task, at a named profile.

    tgrpo-bench train --method sft --suite object --profile small
    tgrpo-bench train --method tgrpo --suite object --task 0 --profile small
    tgrpo-bench train --method dpo --suite object --task 0 --profile small     # also grape (preference methods)
    tgrpo-bench train --method tgrpo --suite object --task 0 --profile paper --init-checkpoint DIR  (OpenVLA-7B)

A thin shell over `bench.runs` (`run_sft`, `run_rl`): parse, validate, call, print.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from bench.cli import UsageError
from tgrpo.rl.methods import PROFILES, get_method, method_names, trains_per_task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, help=f"one of: {', '.join(method_names())}")
    parser.add_argument("--suite", required=True, help="libero_spatial|libero_object|libero_goal|libero_10 or alias")
    parser.add_argument("--task", type=int, default=None, help="task id 0..9 (RL methods train per task)")
    parser.add_argument("--profile", default="small", help=f"one of: {', '.join(PROFILES)}")
    parser.add_argument("--variant", choices=("state", "image"), default="state", help="tiny policy input (SFT)")
    parser.add_argument("--demos", type=Path, default=None, help="demonstration datasets (SFT; default data/demos)")
    parser.add_argument("--init-checkpoint", type=Path, default=None,
                        help="SFT checkpoint RL starts from (openvla: a released fine-tune's directory)")
    parser.add_argument("--policy", choices=("tiny", "openvla"), default=None,
                        help="RL policy (profile default: tiny for smoke and small, openvla for paper)")
    parser.add_argument("--iterations", type=int, default=None, help="RL iterations (profile default)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="preference methods (dpo, grape): rounds of collect -> pair -> learn (profile default)")
    parser.add_argument("--beta", type=float, default=None, help="preference methods: DPO/TPO beta (default 0.1)")
    parser.add_argument("--epochs", type=int, default=None, help="SFT epochs (profile default)")
    parser.add_argument("--group-size", type=int, default=None, help="RL group size N (default 4)")
    parser.add_argument("--a1", type=float, default=None, help="step-advantage weight; a2 = 1 - a1")
    parser.add_argument("--lr", type=float, default=None,
                        help="RL learning rate (profile default: small 1e-4, paper 1e-5)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="RL rollout sampling temperature (default 1.0: the policy itself; docs/training.md)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/...)")
    parser.add_argument("--no-eval", action="store_true", help="RL: skip the final evaluation")
    parser.add_argument("--no-progress", action="store_true")


def _check(args) -> str:
    from tgrpo.envs.protocol import check_task_ids, resolve_suite

    bad = [f"--{k}" for k in ("temperature", "a1", "lr", "beta") if not math.isfinite(getattr(args, k) or 0)]
    if bad:
        raise UsageError(f"{', '.join(bad)} must be a finite number")
    try:
        family = get_method(args.method).family
        if args.profile not in PROFILES:
            raise ValueError(f"unknown profile {args.profile!r}; valid: {', '.join(PROFILES)}")
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        suite = resolve_suite(args.suite)
        if args.task is not None:
            check_task_ids([args.task])
    except ValueError as err:
        raise UsageError(str(err)) from err
    if args.profile == "paper" and family == "sft":
        raise UsageError("profile 'paper' starts from a released OpenVLA fine-tune (the SFT policy): "
                         "train an RL method with --init-checkpoint DIR")
    if family != "preference" and (args.rounds is not None or args.beta is not None):
        raise UsageError(f"--rounds and --beta are options of the preference methods "
                         f"({', '.join(method_names('preference'))}), not of {args.method!r}")
    if trains_per_task(args.method) and args.task is None:
        raise UsageError(f"method {args.method!r} trains per task: give --task 0..9")
    return suite


def _train_sft(args, suite: str) -> int:
    from baselines.sft.config import for_profile
    from bench.runs import run_sft

    out = args.out or Path("runs/sft") / f"{suite}_{args.variant}_{args.profile}"
    overrides = {"epochs": args.epochs} if args.epochs else {}
    try:
        cfg = for_profile(args.profile, suite=suite, demos_dir=args.demos or Path("data/demos"), out_dir=out,
                          variant=args.variant, seed=args.seed, **overrides)
        record = run_sft(cfg, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from err
    print(f"sft {suite}: {record.final}")
    print(f"checkpoint: {record.best_checkpoint}", file=sys.stderr)
    return 0


def _train_rl(args, suite: str) -> int:
    from bench.results import summary_table
    from bench.runs import run_rl
    from tgrpo.rl.config import for_profile

    policy = args.policy or ("openvla" if args.profile == "paper" else "tiny")
    if policy == "openvla":
        if args.init_checkpoint is None:
            raise UsageError("policy 'openvla' needs --init-checkpoint DIR (an OpenVLA checkpoint in the released "
                             "layout, e.g. openvla-7b-finetuned-libero-object; docs/openvla.md)")
        init = args.init_checkpoint
    else:
        init = args.init_checkpoint or Path("runs/sft") / f"{suite}_state_{args.profile}" / "best"
        if not (init / "policy.json").exists():
            raise UsageError(f"no SFT checkpoint at {init}; train one with `tgrpo-bench train --method sft "
                             f"--suite {args.suite} --profile {args.profile}` or pass --init-checkpoint")
    out = args.out or Path("runs") / args.method / f"{suite}_task{args.task}_{args.profile}_seed{args.seed}"
    overrides = {k: v for k, v in {"iterations": args.iterations, "group_size": args.group_size,
                                   "lr": args.lr, "temperature": args.temperature, "rounds": args.rounds,
                                   "beta": args.beta}.items() if v is not None}
    if args.a1 is not None:
        overrides.update(a1=args.a1, a2=1.0 - args.a1)
    try:
        cfg = for_profile(args.profile, method=args.method, suite=suite, task_id=args.task, init_checkpoint=init,
                          out_dir=out, seed=args.seed, policy=policy, **overrides)
        record = run_rl(cfg, evaluate_after=not args.no_eval, progress=not args.no_progress)
    except ValueError as err:
        raise UsageError(str(err)) from err
    if record.metrics:
        print(f"{args.method} {suite} task {args.task}: last iteration {record.metrics[-1]}")
    print(f"policy: {record.policy_dir} (sha256 {record.policy_sha256[:12]})", file=sys.stderr)
    if record.eval is not None:
        print(summary_table(record.eval.summary))
    return 0


def run(args: argparse.Namespace) -> int:
    suite = _check(args)
    return _train_sft(args, suite) if get_method(args.method).family == "sft" else _train_rl(args, suite)
