"""`tgrpo-bench train`: SFT per suite, or an online RL method per task, at a named profile.

    tgrpo-bench train --method sft --suite object --profile small
    tgrpo-bench train --method tgrpo --suite object --task 0 --profile small
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from bench.cli import UsageError

METHODS = ("sft", "tgrpo", "grpo", "tgrpo-no-step", "tgrpo-no-traj")
PROFILES = ("smoke", "small", "paper")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, help=f"one of: {', '.join(METHODS)}")
    parser.add_argument("--suite", required=True, help="libero_spatial|libero_object|libero_goal|libero_10 or alias")
    parser.add_argument("--task", type=int, default=None, help="task id 0..9 (RL methods train per task)")
    parser.add_argument("--profile", default="small", help=f"one of: {', '.join(PROFILES)}")
    parser.add_argument("--variant", choices=("state", "image"), default="state", help="tiny policy input (SFT)")
    parser.add_argument("--demos", type=Path, default=None, help="demonstration datasets (SFT; default data/demos)")
    parser.add_argument("--init-checkpoint", type=Path, default=None, help="SFT checkpoint RL starts from")
    parser.add_argument("--iterations", type=int, default=None, help="RL iterations (profile default)")
    parser.add_argument("--epochs", type=int, default=None, help="SFT epochs (profile default)")
    parser.add_argument("--group-size", type=int, default=None, help="RL group size N (default 4)")
    parser.add_argument("--a1", type=float, default=None, help="step-advantage weight; a2 = 1 - a1")
    parser.add_argument("--lr", type=float, default=None, help="RL learning rate (profile default: small 1e-4, paper 1e-5)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="RL rollout sampling temperature (default 1.0: the policy itself; docs/training.md)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/...)")
    parser.add_argument("--no-eval", action="store_true", help="RL: skip the final evaluation")
    parser.add_argument("--no-progress", action="store_true")


def _check(args) -> str:
    from tgrpo.envs.protocol import check_task_ids, resolve_suite

    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    bad = [f"--{k.replace('_', '-')}" for k in ("temperature", "a1", "lr") if not math.isfinite(getattr(args, k) or 0)]
    if bad:
        raise UsageError(f"{', '.join(bad)} must be a finite number")
    if args.init_checkpoint is not None and args.method != "sft":
        from tgrpo.policies.tiny import TinyPolicy

        try:
            TinyPolicy.load(args.init_checkpoint)  # a corrupt checkpoint is refused before the run directory exists
        except (ValueError, FileNotFoundError) as err:
            raise UsageError(str(err)) from err
    if args.method not in METHODS:
        raise UsageError(f"unknown method {args.method!r}; valid: {', '.join(METHODS)}")
    if args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; valid: {', '.join(PROFILES)}")
    try:
        suite = resolve_suite(args.suite)
        if args.task is not None:
            check_task_ids([args.task])
    except ValueError as err:
        raise UsageError(str(err)) from err
    if args.profile == "paper":
        raise UsageError("profile 'paper' trains OpenVLA-7B, whose policy is not in this build yet; "
                         "use --profile smoke or small (the tiny policy)")
    if args.method != "sft" and args.task is None:
        raise UsageError(f"method {args.method!r} trains per task: give --task 0..9")
    return suite


def _train_sft(args, suite: str) -> int:
    from baselines.sft.config import for_profile
    from baselines.sft.data import load_sft_data
    from baselines.sft.train import train

    demos = args.demos or Path("data/demos")
    out = args.out or Path("runs/sft") / f"{suite}_{args.variant}_{args.profile}"
    overrides = {"epochs": args.epochs} if args.epochs else {}
    try:
        cfg = for_profile(args.profile, suite=suite, demos_dir=demos, out_dir=out, variant=args.variant,
                          seed=args.seed, **overrides)
        data = load_sft_data(demos, suite, args.variant, cfg.max_demos_per_task)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from err
    final = train(cfg, data, progress=not args.no_progress)
    print(f"sft {suite}: {final}")
    print(f"checkpoint: {out / 'best'}", file=sys.stderr)
    return 0


def _train_rl(args, suite: str) -> int:
    from bench.evaluate import EvalRequest, evaluate
    from bench.results import summary_table
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.rl_config import for_profile
    from tgrpo.train import Trainer

    init = args.init_checkpoint or Path("runs/sft") / f"{suite}_state_{args.profile}" / "best"
    if not (init / "policy.json").exists():
        raise UsageError(f"no SFT checkpoint at {init}; train one with `tgrpo-bench train --method sft "
                         f"--suite {args.suite} --profile {args.profile}` or pass --init-checkpoint")
    out = args.out or Path("runs") / args.method / f"{suite}_task{args.task}_{args.profile}_seed{args.seed}"
    overrides = {k: v for k, v in {"iterations": args.iterations, "group_size": args.group_size,
                                   "lr": args.lr, "temperature": args.temperature}.items() if v is not None}
    if args.a1 is not None:
        overrides.update(a1=args.a1, a2=1.0 - args.a1)
    try:
        cfg = for_profile(args.profile, method=args.method, suite=suite, task_id=args.task, init_checkpoint=init,
                          out_dir=out, seed=args.seed, **overrides)
    except ValueError as err:
        raise UsageError(str(err)) from err
    trainer = Trainer(cfg)
    metrics = trainer.run(progress=not args.no_progress)
    if metrics:
        print(f"{args.method} {suite} task {args.task}: last iteration {metrics[-1]}")
    print(f"policy: {trainer.export_policy(out / 'policy')}", file=sys.stderr)
    if not args.no_eval and cfg.eval_episodes:
        request = EvalRequest(suite, (args.task,), tuple(range(cfg.eval_episodes)),
                              ObsConfig(mode=trainer.policy.cfg.variant), out / "eval", workers=cfg.workers_eval,
                              profile=cfg.profile)
        trainer.policy.meta.update(method=args.method, run=str(out), iterations=cfg.iterations)
        print(summary_table(evaluate(request, trainer.policy, progress=not args.no_progress)))
    return 0


def run(args: argparse.Namespace) -> int:
    suite = _check(args)
    return _train_sft(args, suite) if args.method == "sft" else _train_rl(args, suite)
