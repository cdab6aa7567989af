"""`tgrpo-bench reproduce`: the whole pipeline for one suite and profile, cached stage by stage.

    tgrpo-bench reproduce --suite long --profile smoke
    tgrpo-bench reproduce --suite object --profile small --methods tgrpo,grpo --tasks 1,6,8 --seeds 0,1 --dry-run
    tgrpo-bench reproduce --suite object --executor ray --address 10.0.0.1:6379   # on a Ray cluster
    tgrpo-bench reproduce --suite object --profile small --report-only   # what is finished so far, while it runs

Rerunning the same command skips finished stages and resumes a killed one; exit code 1 when a stage failed.
"""

from __future__ import annotations

import argparse
import re
import sys
from functools import partial
from pathlib import Path

from bench.cli import UsageError, int_list

REPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]*")


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True, help="spatial|object|goal|long or a libero_* name")
    parser.add_argument("--profile", default="smoke", help="smoke|small|paper (default smoke)")
    parser.add_argument("--methods", type=_names, default=None, help="comma-separated methods (profile default)")
    parser.add_argument("--tasks", default=None,
                        help="task ids the methods train, e.g. 1,6,8, or auto[:N]: the N (3) whose SFT success is "
                             "nearest 50 %%, picked once the SFT evaluations finished (profile default)")
    parser.add_argument("--seeds", type=int_list, default=None, help="RL seeds (profile default)")
    parser.add_argument("--setting", action="append", default=None, metavar="KEY=V[,KEY=V...]",
                        help="RL config overrides for every RL stage, e.g. a1=0.1,a2=0.9 or epochs=2 or "
                             "loss.clip_eps=0.1; repeat for a sweep (one RL stage per setting); default: the "
                             "profile's settings")
    parser.add_argument("--eval-episodes", type=int, default=None,
                        help="evaluate on the first N official states instead of the profile's (a quick check)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="paper profile: the released OpenVLA fine-tune of the suite (the SFT policy RL starts "
                        "from; docs/openvla.md)")
    parser.add_argument("--store", type=Path, default=Path("results/reproduce"),
                        help="run store root (default results/reproduce: the /results volume in the container)")
    parser.add_argument("--report", default=None, metavar="NAME",
                        help="the report's directory under the store (default <suite>-<profile>[-<swept keys>]); "
                             "runs over other tasks or methods of one suite keep their reports apart with it")
    parser.add_argument("--dry-run", action="store_true", help="print the plan with estimates; run nothing")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing; write the report, curves and comparison of the stages finished so far "
                             "(the unfinished ones listed), e.g. while a long run is still going")
    parser.add_argument("--jobs", type=int, default=1,
                        help="local executor: run up to N independent stages side by side, each in its own process "
                             "(default 1; for machines with cores to spare: docs/reproduce.md)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local (default): stages one after another here; ray: each stage a Ray task on a "
                             "cluster, independent stages side by side (needs '.[ray]'; docs/scale-out.md)")
    parser.add_argument("--address", default=None,
                        help="the Ray cluster's head, host:port (with --executor ray; default: RAY_ADDRESS, a "
                             "cluster started on this machine, else a new one-node Ray here)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from bench.reproduce.execute import Outcome, describe_plan
    from bench.reproduce.pick_tasks import plan_by_rule
    from bench.reproduce.plan import PROFILE_SETTINGS, TaskRule, build_plan, parse_tasks
    from bench.reproduce.report import compare_specs, plot_learning_curves, write_report
    from bench.reproduce.settings import normalise, parse_setting
    from bench.reproduce.store import RunStore, StoreError
    from tgrpo.envs.protocol import check_task_ids, resolve_suite
    from tgrpo.provenance import provenance
    from tgrpo.rl.methods import check_profile, trains_per_task

    try:
        suite = resolve_suite(args.suite)
        check_profile(args.profile)
        tasks = parse_tasks(args.tasks) if args.tasks is not None else None
        if isinstance(tasks, tuple):
            tasks = tuple(check_task_ids(list(tasks)))
        if args.seeds is not None and (not args.seeds or min(args.seeds) < 0):
            raise ValueError(f"--seeds must name seeds >= 0, got {args.seeds}")
        settings = (tuple(normalise(args.profile, parse_setting(text)) for text in args.setting) if args.setting
                    else ({},))
        methods = tuple(args.methods) if args.methods else None
        seeds = tuple(args.seeds) if args.seeds is not None else None
        extra = {"checkpoint": args.checkpoint, "eval_episodes": args.eval_episodes}
        profile = PROFILE_SETTINGS[args.profile]
        rule = profile.default_tasks if tasks is None else tasks
        if not (isinstance(rule, TaskRule) and any(map(trains_per_task, methods or profile.default_methods))):
            rule = None  # the tasks are known now (a rule without RL methods is the SFT evaluation of every task)
        # a rule's tasks come later: checked now on task 0, so bad input is refused before anything runs
        plan = build_plan(suite, args.profile, methods, (0,) if rule else tasks, seeds, settings, **extra)
        store = RunStore(args.store)
        if args.address is not None and args.executor != "ray":
            raise ValueError("--address needs --executor ray")
        if args.jobs != 1 and args.executor != "local":
            raise ValueError("--jobs is for the local executor (a Ray cluster places stages by their resources)")
        if args.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
        if args.report is not None and not REPORT_NAME.fullmatch(args.report):
            raise ValueError(f"--report takes a directory name of letters, digits, '.', '_', '-', '=', got "
                             f"{args.report!r}")
        if args.dry_run and args.report_only:
            raise ValueError("--dry-run and --report-only exclude each other")
        runs = not (args.dry_run or args.report_only)
        out_stream = sys.stdout if args.dry_run else sys.stderr
        by_rule = partial(plan_by_rule, store, suite, args.profile, rule, methods, seeds, settings, **extra)
        picked = None
        if rule is not None:
            plan, picked = by_rule()
        cluster = _join_cluster(args.address, plan, store) if args.executor == "ray" and runs else None
        if rule is not None:
            print(_picked_line(rule, picked), file=out_stream)
        print(describe_plan(plan, store), file=out_stream)
        if args.dry_run:
            return 0
        if args.report_only:
            outcome = Outcome()
        else:
            outcome = _execute(args, plan, store, cluster)
            if rule is not None and picked is None and outcome.ok:  # the SFT evaluations the rule reads are done
                plan, picked = by_rule()
                print(_picked_line(rule, picked), file=sys.stderr)
                outcome = _execute(args, plan, store, None)
    except (ValueError, StoreError) as err:
        raise UsageError(str(err)) from err
    swept = sorted({key for setting in settings for key in setting})  # a sweep's report does not overwrite others
    out = store.root / (args.report or "-".join([suite, args.profile, *swept]))
    print(write_report(plan, store, out, provenance(profile=args.profile, suite=suite)))
    print(f"report: {out / 'report.md'}", file=sys.stderr)
    for png in plot_learning_curves(plan, store, out):
        print(f"learning curves: {png}", file=sys.stderr)
    compared = _compare(compare_specs(plan, store), args.profile, out / "compare")
    for stage, error in outcome.failed:
        log = store.path(stage) / "error.log"
        print(f"FAILED {stage.kind} {stage.name}: {error}" + (f" (log: {log})" if log.exists() else ""),
              file=sys.stderr)
    for stage in outcome.blocked:
        print(f"BLOCKED {stage.kind} {stage.name}: an input stage failed", file=sys.stderr)
    return 0 if outcome.ok and compared else 1


def _picked_line(rule, picked: tuple[int, ...] | None) -> str:
    if picked is None:
        return (f"--tasks {rule}: the RL stages come once the SFT evaluations below have finished, on the "
                f"{rule.count} tasks whose SFT success is nearest 50 %")
    return f"RL tasks by the rule --tasks {rule} (SFT success nearest 50 %): {','.join(map(str, picked))}"


def _execute(args: argparse.Namespace, plan: list, store, cluster):
    """Run the plan's unfinished stages with the chosen executor (`cluster`: the joined Ray module, None to join)."""
    from bench.reproduce.execute import execute

    if args.executor == "ray":
        from bench.reproduce.ray_executor import execute_ray

        cluster = cluster or _join_cluster(args.address, plan, store)
        return execute_ray(cluster, plan, store, progress=not args.no_progress)
    return execute(plan, store, progress=not args.no_progress, jobs=args.jobs)


def _join_cluster(address: str | None, plan: list, store):
    """The `ray` module joined to the cluster, refusing up front (one line) a stage that no node can hold."""
    from bench.reproduce.ray_executor import check_fits, connect

    ray = connect(address)
    check_fits(ray, [s for s in plan if not store.is_done(s)])
    return ray


def _compare(specs: list[str], profile: str, out: Path) -> bool:
    """Tiers against the paper's table (paper profile) or claim verdicts (smoke, small); False if it could not run."""
    from bench.compare import CompareError, run_compare, write_comparison

    if not specs:
        return True
    try:
        comparison = run_compare(specs, "paper", profile)
    except (CompareError, ValueError) as err:
        print(f"compare: {err}", file=sys.stderr)
        return False
    write_comparison(out, comparison)
    print(comparison.markdown)
    print(f"comparison: {out / 'compare.md'}", file=sys.stderr)
    return True
