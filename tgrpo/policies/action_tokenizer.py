"""OpenVLA's action tokenizer and action normalisation, exactly (docs/protocol.md, "Action tokenizer").

Each of the 7 action dimensions is a value in [-1, 1] discretised into 256 uniform bins
(`bins = linspace(-1, 1, 256)`); the token is one of the last 256 ids of the Llama-2 vocabulary:
`token = 32000 - digitize(x, bins)`, so ids 31744..31999. Decoding maps a token to the centre of its bin.

Dims 0-5 are normalised with the training data's 1st/99th percentiles; the gripper is stored as OpenVLA's LIBERO
data stores it, in [0, 1] with 1 = open, and mapped back to the env's -1 open / +1 close by -sign(2x - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tgrpo.envs.observation import gripper_to_env

N_BINS = 256
LLAMA_VOCAB = 32000  # action tokens are the last 256 ids of this vocabulary
PADDED_VOCAB = 32064  # OpenVLA's embedding size (<PAD> at 32000, padded to a multiple of 64)
ACTION_DIM = 7
FIRST_ACTION_TOKEN = LLAMA_VOCAB - N_BINS  # 31744
BINS = np.linspace(-1.0, 1.0, N_BINS)
BIN_CENTERS = (BINS[:-1] + BINS[1:]) / 2.0  # 255 centres


def encode(values: np.ndarray) -> np.ndarray:
    """Normalised values [..., 7] in [-1, 1] (clipped) -> token ids [..., 7] in 31744..31999."""
    digitized = np.digitize(np.clip(values, -1.0, 1.0), BINS)  # 1..256
    return (LLAMA_VOCAB - digitized).astype(np.int64)


def decode(tokens: np.ndarray) -> np.ndarray:
    """Token ids [..., 7] -> normalised values [..., 7] (bin centres)."""
    index = np.clip(LLAMA_VOCAB - np.asarray(tokens) - 1, 0, BIN_CENTERS.shape[0] - 1)
    return BIN_CENTERS[index]


@dataclass(frozen=True)
class NormStats:
    """Per-dimension 1st/99th percentiles of the training actions; mask marks the normalised dims (0-5)."""

    q01: tuple[float, ...]
    q99: tuple[float, ...]
    mask: tuple[bool, ...] = (True,) * 6 + (False,)

    @classmethod
    def from_actions(cls, env_actions: np.ndarray) -> NormStats:
        """Statistics of env-convention actions [K, 7] (dims 0-5 only; the gripper is not normalised)."""
        q01 = np.quantile(env_actions, 0.01, axis=0)
        q99 = np.quantile(env_actions, 0.99, axis=0)
        q01[6], q99[6] = 0.0, 1.0
        return cls(tuple(map(float, q01)), tuple(map(float, q99)))

    def to_dict(self) -> dict:
        return {"q01": list(self.q01), "q99": list(self.q99), "mask": list(self.mask)}


def env_to_normalized(env_actions: np.ndarray, stats: NormStats) -> np.ndarray:
    """Env actions [..., 7] -> model targets [..., 7]: dims 0-5 to [-1, 1] by q01/q99, gripper to [0, 1] (1 open)."""
    a = np.asarray(env_actions, dtype=np.float64)
    q01, q99, mask = np.asarray(stats.q01), np.asarray(stats.q99), np.asarray(stats.mask)
    span = np.where(q99 - q01 > 1e-8, q99 - q01, 1.0)
    scaled = np.clip(2.0 * (a - q01) / span - 1.0, -1.0, 1.0)
    out = np.where(mask, scaled, a)
    out[..., 6] = (1.0 - np.sign(a[..., 6])) / 2.0  # -1 open -> 1, +1 close -> 0
    return out


def normalized_to_env(values: np.ndarray, stats: NormStats) -> np.ndarray:
    """Model outputs [..., 7] -> env actions: un-normalise dims 0-5, gripper [0, 1] -> -1 open / +1 close."""
    v = np.asarray(values, dtype=np.float64)
    q01, q99, mask = np.asarray(stats.q01), np.asarray(stats.q99), np.asarray(stats.mask)
    out = np.where(mask, 0.5 * (v + 1.0) * (q99 - q01) + q01, v)
    out[..., 6] = gripper_to_env(v[..., 6])
    return out


def tokens_to_env(tokens: np.ndarray, stats: NormStats) -> np.ndarray:
    return normalized_to_env(decode(tokens), stats)


def env_to_tokens(env_actions: np.ndarray, stats: NormStats) -> np.ndarray:
    return encode(env_to_normalized(env_actions, stats))
