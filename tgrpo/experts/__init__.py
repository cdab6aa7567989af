"""Privileged-state scripted expert: skills, per-predicate planner and the `expert` policy."""

from tgrpo.experts.policy import ExpertPolicy, StageInfo

__all__ = ["ExpertPolicy", "StageInfo"]
