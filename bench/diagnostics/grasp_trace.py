"""Diagnostic: how a pick-and-place episode goes, read from privileged state step by step (not a result file).

Per official init state: LIBERO's success; the step from which the policy holds the gripper closed (HOLD steps or
to the end: a brief close that is opened again does not count) and the end effector's offset from the object's
origin there; the object's largest lift; how much of the episode the arm stands still with the gripper commanded
closed; where the end effector ends up. It tells a missed grasp (closed too early or too high, then carried nothing)
from a stall (object held, arm still) from a drop.

    python -m bench.diagnostics.grasp_trace --policy tiny --checkpoint runs/rl/object_t8_tgrpo_T05/policy \
        --suite object --task 8 --episodes 0,1,3,4
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

STILL = 0.02  # normalised arm action below which the arm counts as standing still (docs/training.md, bug hunt)
HOLD = 10  # a grasp is a close command held this many steps (the gripper takes about 10 steps to close)


def target_object(layout) -> str:
    """The object the task moves: the first argument of its first goal literal (`In`/`On`)."""
    return layout.goal_literals[0][1]


def trace_episode(env, policy, episode: int, obj: str, mode: str = "greedy", temperature: float = 1.0) -> dict:
    """Run one episode from official init state `episode` and summarise it (centimetres, steps)."""
    from tgrpo.envs.libero_env import official_start

    layout, info = env.layout, env.info
    obs = env.start_episode(official_start(info.suite, info.task_id, episode))
    policy.begin_episode(0, info.instruction, (info.task_id, episode), layout)
    z0 = float(layout.get(obs["privileged"], f"pose/{obj}")[2])
    closed, still, offsets, max_lift, success = [], [], [], 0.0, False
    while not env.finished:
        action = policy.act({k: v[None] for k, v in obs.items()}, [info.instruction], [0], mode, temperature).actions[0]
        closed.append(bool(action[6] > 0))
        still.append(bool(np.abs(action[:3]).max() < STILL))
        offsets.append(_offset_cm(layout, obs["privileged"], obj))
        obs, success = env.step(action)
        max_lift = max(max_lift, float(layout.get(obs["privileged"], f"pose/{obj}")[2]) - z0)
        if success:
            break
    grasp = next((t for t in range(len(closed)) if all(closed[t:t + HOLD])), None)
    return {"episode": episode, "success": bool(success), "steps": env.steps, "object": obj,
            "grasp_close": None if grasp is None else {"step": grasp, "eef_minus_object_cm": offsets[grasp]},
            "max_lift_cm": round(100 * max_lift, 1),
            "closed_still_frac": round(sum(c and s for c, s in zip(closed, still, strict=True)) / env.steps, 2),
            "final_eef_minus_object_cm": _offset_cm(layout, obs["privileged"], obj),
            "final_gripper_opening_m": round(float(layout.get(obs["privileged"], "gripper_opening")[0]), 4)}


def _offset_cm(layout, privileged: np.ndarray, obj: str) -> list[float]:
    offset = layout.get(privileged, "eef_pos") - layout.get(privileged, f"pose/{obj}")[:3]
    return [round(100 * float(x), 1) for x in offset]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="tiny")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--task", type=int, required=True)
    parser.add_argument("--episodes", default="0")
    parser.add_argument("--object", default=None, help="entity to follow (default: the task's first goal object)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (the protocol)")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON lines here")
    args = parser.parse_args(argv)

    import torch

    from tgrpo.envs.libero_env import LiberoEnv
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol, resolve_suite
    from tgrpo.policies.registry import make_policy

    torch.set_num_threads(1)
    try:
        policy = make_policy(args.policy, checkpoint=args.checkpoint)
        env = LiberoEnv(resolve_suite(args.suite), args.task, ObsConfig(mode="state"), Protocol(episode_start="reset"))
    except (ValueError, FileNotFoundError) as err:
        print(f"grasp_trace: error: {err}", file=sys.stderr)
        return 2
    mode = "greedy" if args.temperature == 0 else "sample"
    rows = []
    try:
        obj = args.object or target_object(env.layout)
        for episode in (int(e) for e in args.episodes.split(",")):
            rows.append(trace_episode(env, policy, episode, obj, mode, args.temperature or 1.0))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        env.close()
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
