"""`tgrpo-bench rewards`: multi-stage dense reward specs: generate (rules or LLM), check, validate, key poses.

    tgrpo-bench rewards generate --suite goal --source rules      # the committed offline specs
    tgrpo-bench rewards generate --suite goal --source llm        # Messages API (ANTHROPIC_API_KEY), cached
    tgrpo-bench rewards check                                      # every committed spec against schema + BDDL
    tgrpo-bench rewards validate --suite object                    # expert demos on the real simulator (a table)
    tgrpo-bench rewards validate --suite object --write-record     # ... and record it next to the specs
    tgrpo-bench rewards keyposes --suite object                    # key poses from expert demonstrations
    tgrpo-bench rewards bench --suite long --tasks 0               # reward time vs simulation time
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from bench.cli import UsageError, int_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    gen = sub.add_parser("generate", help="write stage specs of a suite from rules or an LLM")
    gen.add_argument("--suite", required=True, help="spatial|object|goal|long or libero_* (or 'all')")
    gen.add_argument("--tasks", type=int_list, default=None, help="task ids, e.g. 0,3 (default: all 10)")
    gen.add_argument("--source", choices=("rules", "llm"), default="rules")
    gen.add_argument("--out", type=Path, default=None,
                     help="output directory (default: the committed tgrpo/rewards/specs for rules, "
                          "results/rewards/llm/<model> for llm)")
    gen.add_argument("--model", default=None, help="LLM model (default: LLMConfig.model)")
    gen.add_argument("--cache-dir", type=Path, default=None, help="LLM answer cache (default: LLMConfig)")
    gen.add_argument("--base-url", default=None, help="Messages API base URL (default: the SDK's)")
    gen.add_argument("--offline", action="store_true", help="LLM: replay cached answers only")
    gen.add_argument("--max-retries", type=int, default=None, help="LLM: SDK retries per request")
    gen.add_argument("--timeout", type=float, default=None, help="LLM: seconds per HTTP attempt")

    chk = sub.add_parser("check", help="check spec files against the schema and each task's BDDL (no simulator)")
    chk.add_argument("--suite", default="all")
    chk.add_argument("--specs", type=Path, default=None, help="directory of <suite>.json (default: committed)")

    val = sub.add_parser("validate", help="replay expert demonstrations and failures; a table per task")
    val.add_argument("--suite", required=True)
    val.add_argument("--tasks", type=int_list, default=None)
    val.add_argument("--episodes", type=int, default=3,
                     help="successful expert demonstrations wanted per task (official init states 0, 1, ...)")
    val.add_argument("--tries", type=int, default=None, help="init states tried at most (default 2 x episodes)")
    val.add_argument("--specs", type=Path, default=None, help="directory of <suite>.json (default: committed)")
    val.add_argument("--write-record", action="store_true",
                     help="write each task's result into <specs>/<suite>.validation.json (the --specs directory, "
                          "default the committed tgrpo/rewards/specs); default: only print the table")
    val.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")

    kp = sub.add_parser("keyposes", help="derive key poses from expert demonstrations on sampled placements")
    kp.add_argument("--suite", required=True)
    kp.add_argument("--tasks", type=int_list, default=None)
    kp.add_argument("--demos", type=int, default=5, help="successful demonstrations wanted per task")
    kp.add_argument("--seed", type=int, default=1000, help="first placement seed (LIBERO's samplers)")
    kp.add_argument("--specs", type=Path, default=None)

    bn = sub.add_parser("bench", help="time the reward on [N, M + 1, D] against one simulated step")
    bn.add_argument("--suite", default="long")
    bn.add_argument("--tasks", type=int_list, default=None, help="task ids (default: 0)")
    bn.add_argument("--n", type=int, default=4, help="trajectories")
    bn.add_argument("--m", type=int, default=300, help="steps")
    bn.add_argument("--repeats", type=int, default=20)
    bn.add_argument("--policy", choices=("expert", "random"), default="expert")
    bn.add_argument("--out", type=Path, default=Path("results/bench/rewards"))


def _suites(name: str) -> list[str]:
    from tgrpo.envs.protocol import SUITES, resolve_suite

    if name.strip().lower() == "all":
        return list(SUITES)
    try:
        return [resolve_suite(name)]
    except ValueError as err:
        raise UsageError(str(err)) from err


def _tasks(tasks: list[int] | None) -> list[int]:
    from tgrpo.envs.protocol import TASKS_PER_SUITE, check_task_ids

    try:
        return check_task_ids(tasks if tasks is not None else list(range(TASKS_PER_SUITE)))
    except ValueError as err:
        raise UsageError(str(err)) from err


def _specs_dir(path: Path | None) -> Path:
    from tgrpo.rewards.schema import SPECS_DIR

    return SPECS_DIR if path is None else path


def _load_spec(suite: str, task_id: int, directory: Path | None = None) -> dict:
    """A task's spec (failed ones too) from the directory (default: committed); UsageError if it cannot be read."""
    from tgrpo.rewards.store import load_spec, suite_path

    try:
        return load_spec(suite, task_id, path=suite_path(suite, _specs_dir(directory)), allow_failed=True)
    except (ValueError, FileNotFoundError) as err:  # SpecError is a ValueError
        raise UsageError(str(err)) from err


def _generate(args) -> int:
    from tgrpo.rewards.facts import task_facts
    from tgrpo.rewards.llm import LLMConfig, LLMError, LLMUnavailable, llm_spec
    from tgrpo.rewards.rules import rules_spec
    from tgrpo.rewards.schema import SpecError
    from tgrpo.rewards.store import suite_path, write_suite

    cfg = None
    if args.source == "llm":
        overrides = {k: v for k, v in (("model", args.model), ("base_url", args.base_url),
                                       ("max_retries", args.max_retries), ("timeout_s", args.timeout),
                                       ("cache_dir", None if args.cache_dir is None else str(args.cache_dir)))
                     if v is not None}
        cfg = LLMConfig(offline=args.offline, **overrides)
        if cfg.max_retries < 0 or not (math.isfinite(cfg.timeout_s) and cfg.timeout_s > 0):
            raise UsageError("--max-retries must be >= 0 and --timeout > 0")
    out_dir = args.out or (_specs_dir(None) if cfg is None else Path("results/rewards/llm") / cfg.model)
    suites, tasks = _suites(args.suite), _tasks(args.tasks)
    failed = 0
    for suite in suites:
        specs, unavailable = [], None
        for task_id in tasks:
            facts = task_facts(suite, task_id)
            try:
                spec = rules_spec(facts) if cfg is None else llm_spec(facts, cfg)
            except LLMUnavailable as err:  # no key, no endpoint: every further task would fail alike
                unavailable = err
                break
            except (SpecError, LLMError) as err:
                failed += 1
                print(f"{suite}/{task_id}: FAILED: {err}", file=sys.stderr)
                continue
            specs.append(spec)
            n = sum(len(p["stages"]) for p in spec["subplans"])
            print(f"{suite}/{task_id}: {len(spec['subplans'])} sub-plan(s), {n} stages  ({facts.instruction})")
        if specs:
            try:
                write_suite(suite_path(suite, out_dir), suite, specs)
            except OSError as err:
                raise UsageError(f"cannot write {suite_path(suite, out_dir)}: {err}") from err
            print(f"wrote {suite_path(suite, out_dir)}", file=sys.stderr)
        if unavailable is not None:
            raise UsageError(str(unavailable))
    return 1 if failed else 0


def _check(args) -> int:
    from tgrpo.rewards.schema import SpecError
    from tgrpo.rewards.store import load_spec, read_suite, suite_path, validation_status

    directory = _specs_dir(args.specs)
    bad = 0
    for suite in _suites(args.suite):
        try:
            read_suite(suite_path(suite, directory))
        except (SpecError, FileNotFoundError) as err:  # the whole file: one line, not one per task
            bad += 1
            print(f"{suite}: INVALID: {err}")
            continue
        for task_id in _tasks(None):
            try:
                spec = load_spec(suite, task_id, path=suite_path(suite, directory), allow_failed=True)
                status = validation_status(spec, directory)
                print(f"{suite}/{task_id}: ok ({spec['source'].get('kind')}, validation: {status})")
            except SpecError as err:
                bad += 1
                print(f"{suite}/{task_id}: INVALID: {err}")
    return 1 if bad else 0


def _validate(args) -> int:
    import json

    from tgrpo.rewards.keyposes import keyposes_path, load_key_poses
    from tgrpo.rewards.store import write_validation
    from tgrpo.rewards.validate import table, validate_task

    if args.episodes < 1 or args.episodes > 50:
        raise UsageError(f"--episodes must be 1..50, got {args.episodes}")
    if args.tries is not None and not args.episodes <= args.tries <= 50:
        raise UsageError(f"--tries must be between --episodes and 50, got {args.tries}")
    directory = _specs_dir(args.specs)
    jobs = []  # every spec and key pose file is read before the first (long) simulation
    for suite in _suites(args.suite):
        for task_id in _tasks(args.tasks):
            spec = _load_spec(suite, task_id, directory)
            try:
                jobs.append((suite, task_id, spec, load_key_poses(spec, keyposes_path(suite, directory))))
            except ValueError as err:
                raise UsageError(str(err)) from err
    rows = []
    for suite, task_id, spec, poses in jobs:
        print(f"{suite}/{task_id}: {spec['instruction']}", file=sys.stderr)
        row = validate_task(suite, task_id, spec, episodes=args.episodes, key_poses=poses,
                            log=lambda m: print(m, file=sys.stderr), tries=args.tries)
        row.demo_source = "expert" + (" + demo key poses" if poses else "")
        rows.append(row)
        print(f"  -> {row.status} {'; '.join(row.reasons)}", file=sys.stderr)
        if args.write_record:
            print(f"  recorded in {write_validation(suite, {task_id: row.to_dict()}, directory)}", file=sys.stderr)
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.to_dict() for r in rows], indent=1))
    return 1 if any(r.status == "fail" for r in rows) else 0


def _keyposes(args) -> int:
    from tgrpo.rewards.keyposes import derive_key_poses, keyposes_path, write_key_poses
    from tgrpo.rewards.validate import demonstrations_on_sampled_states

    if args.demos < 1:
        raise UsageError("--demos must be at least 1")
    directory = _specs_dir(args.specs)
    for suite in _suites(args.suite):
        per_task = {}
        for task_id in _tasks(args.tasks):
            spec = _load_spec(suite, task_id, directory)
            demos, layout = demonstrations_on_sampled_states(suite, task_id, args.demos, args.seed,
                                                             log=lambda m: print(m, file=sys.stderr))
            poses = derive_key_poses(spec, layout, [d.privileged for d in demos])
            per_task[task_id] = (spec, poses)
            print(f"{suite}/{task_id}: {len(demos)} demos, key poses for {len(poses)} of "
                  f"{sum(len(p['stages']) for p in spec['subplans'])} stages")
        write_key_poses(keyposes_path(suite, directory), suite, per_task)
        print(f"wrote {keyposes_path(suite, directory)}", file=sys.stderr)
    return 0


def _bench(args) -> int:
    import json

    from tgrpo.rewards.benchmark import run_benchmark
    from tgrpo.rewards.keyposes import load_key_poses

    if args.n < 1 or args.m < 1 or args.repeats < 1:
        raise UsageError("--n, --m and --repeats must be at least 1")
    results = []
    for suite in _suites(args.suite):
        for task_id in _tasks(args.tasks if args.tasks is not None else [0]):
            spec = _load_spec(suite, task_id)
            results.append(run_benchmark(suite, task_id, spec, args.n, args.m, args.repeats, args.policy,
                                         load_key_poses(spec), log=print))
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "rewards_bench.json").write_text(json.dumps(results, indent=1))
    except OSError as err:
        raise UsageError(f"cannot write {args.out}: {err}") from err
    print(f"wrote {args.out / 'rewards_bench.json'}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    actions = {"generate": _generate, "check": _check, "validate": _validate, "keyposes": _keyposes,
               "bench": _bench}
    return actions[args.action](args)
