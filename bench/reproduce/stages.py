"""Run one stage of the plan in its store directory through the library entry points. Each entry point resumes a
killed run in place, so rerunning an unfinished stage continues it."""

from __future__ import annotations

from pathlib import Path

from bench.reproduce.store import Stage


def run_stage(stage: Stage, directory: Path, inputs: dict[str, Path], progress: bool) -> dict:
    """Run `stage` writing under `directory`; `inputs` maps each input stage's kind to its directory. Returns the
    result summary kept in the stage record."""
    return {"demos": _demos, "sft": _sft, "eval": _eval, "rl": _rl}[stage.kind](stage.config, directory, inputs,
                                                                                 progress)


def _demos(cfg: dict, directory: Path, inputs: dict[str, Path], progress: bool) -> dict:
    from tgrpo.data.generate import DemoRequest, generate

    request = DemoRequest(suite=cfg["suite"], task_ids=tuple(cfg["tasks"]), per_task=cfg["per_task"],
                          out_dir=directory / "data", keypose_root=directory / "keyposes", seed=cfg["seed"],
                          workers=2, episode_start=cfg["episode_start"], action_noise=cfg["action_noise"])
    summary = generate(request, progress=progress)
    short = {t: s.get("demos") for t, s in summary["tasks"].items() if not (s.get("complete") or s.get("skipped"))}
    if short or summary["errors"]:
        raise RuntimeError(f"demonstrations incomplete: short tasks {short}, errors {summary['errors']}")
    return {"env_steps": summary["env_steps"]}


def _sft(cfg: dict, directory: Path, inputs: dict[str, Path], progress: bool) -> dict:
    from baselines.sft.config import for_profile
    from bench.runs import run_sft

    overrides = {"epochs": cfg["epochs"]} if cfg["epochs"] else {}
    sft_cfg = for_profile(cfg["profile"], suite=cfg["suite"], demos_dir=inputs["demos"] / "data",
                          out_dir=directory / "run", variant=cfg["variant"], seed=cfg["seed"], **overrides)
    record = run_sft(sft_cfg, progress=progress)
    return {"final": record.final, "checkpoint": str(record.best_checkpoint.relative_to(directory))}


def _eval(cfg: dict, directory: Path, inputs: dict[str, Path], progress: bool) -> dict:
    import torch

    from bench.evaluate import EvalRequest
    from bench.runs import load_trainable, run_eval

    if "torch_threads" in cfg:
        torch.set_num_threads(cfg["torch_threads"])
    if cfg.get("policy") == "openvla":  # the paper profile: the released fine-tune is the SFT policy
        policy = load_trainable("openvla", Path(cfg["checkpoint"]), unnorm_key=cfg["suite"])
    else:
        policy = load_trainable("tiny", inputs["sft"] / "run" / "best")
    request = EvalRequest(cfg["suite"], tuple(cfg["tasks"]), tuple(range(cfg["episodes"])), policy.obs_config(),
                          directory / "eval")
    return {"suites": run_eval(request, policy, progress=progress).summary["suites"]}


def _rl(cfg: dict, directory: Path, inputs: dict[str, Path], progress: bool) -> dict:
    from bench.reproduce.settings import rl_kwargs
    from bench.runs import run_rl
    from tgrpo.rl.config import for_profile

    rl_cfg = for_profile(cfg["profile"], method=cfg["method"], suite=cfg["suite"], task_id=cfg["task"],
                         init_checkpoint=cfg.get("checkpoint") or inputs["sft"] / "run" / "best",
                         out_dir=directory / "run", seed=cfg["seed"], eval_episodes=cfg["eval_episodes"],
                         **rl_kwargs(cfg["profile"], cfg.get("settings", {})))
    record = run_rl(rl_cfg, progress=progress)
    return {"iterations": len(record.metrics), "policy_sha256": record.policy_sha256,
            "suites": record.eval.summary["suites"] if record.eval else None}
