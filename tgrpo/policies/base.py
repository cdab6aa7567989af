"""The policy interface shared by rollouts, trainers and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DECODE_MODES = ("greedy", "sample")


@dataclass
class PolicyOutput:
    """One batched decision.

    actions: [B, 7] float, env convention (dims 0-5 delta pose in [-1, 1], gripper -1 open / +1 close).
    tokens: [B, 7] int64 action token ids, or None for policies without tokens.
    logprobs: [B, 7] float32 log-probabilities of those tokens under the distribution they were drawn from (sampled
        at temperature T: ``log_softmax(logits / T)``; greedy: ``log_softmax(logits)``), or None.
    """

    actions: np.ndarray
    tokens: np.ndarray | None = None
    logprobs: np.ndarray | None = None


class Policy:
    """Base class. Subclasses implement `act`; stateful ones also `begin_episode`.

    `act` receives observations stacked over a batch of env slots (`slots` names which ones, so a stateful
    policy keeps per-slot memory) and returns one action per row.
    """

    name: str = "base"
    obs_mode: str | None = None  # "image" or "state" when the policy needs one, None when it reads nothing

    def begin_episode(self, slot: int, instruction: str, episode_key: tuple = (), layout=None) -> None:
        """A new episode starts in env slot `slot`.

        episode_key identifies it (e.g. (task, episode)) so a seeded policy acts the same however episodes are
        spread over workers; layout is the task's PrivilegedLayout, for policies that read privileged state.
        """

    def act(
        self,
        obs: dict[str, np.ndarray],
        instructions: list[str],
        slots: list[int],
        mode: str = "greedy",
        temperature: float = 1.0,
    ) -> PolicyOutput:
        raise NotImplementedError

    def describe(self) -> dict:
        """What identifies this policy in a result row (name, checkpoint, seed, ...)."""
        return {"name": self.name}

