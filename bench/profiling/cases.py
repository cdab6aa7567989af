"""The shape grid and, per case, the timed call of each implementation (inputs made outside it)."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

# Advantage shapes are (groups G, trajectories N, steps M); loss shapes are (steps, tokens T, hidden H, vocab V).
GRIDS: dict[str, dict[str, dict[str, list[tuple[int, ...]]]]] = {
    "cpu": {
        "smoke": {"advantage": [(2, 4, 16)], "loss": [(4, 7, 32, 500)]},
        "quick": {"advantage": [(64, 8, 512)], "loss": [(64, 7, 256, 32064)]},
        "full": {
            "advantage": [(1, 4, 300), (64, 8, 512), (1024, 8, 512)],
            "loss": [(32, 7, 512, 32064), (128, 7, 512, 32064)],
        },
    },
    "cuda": {
        "smoke": {"advantage": [(2, 4, 16)], "loss": [(4, 7, 32, 500)]},
        "quick": {"advantage": [(1024, 8, 512)], "loss": [(512, 7, 4096, 32064)]},
        "full": {
            "advantage": [(64, 8, 512), (1024, 8, 512)],
            "loss": [(512, 7, 4096, 32064), (2048, 7, 4096, 32064)],
        },
    },
}
DTYPES = {"cpu": "float32", "cuda": "bfloat16"}  # loss inputs; advantages are float32 rewards
IMPLS: dict[tuple[str, str], list[str]] = {
    ("advantage", "cpu"): ["ours", "loop-reference", "floor-copy"],
    ("advantage", "cuda"): ["torch-eager", "torch-compile", "ours", "ours-kernel", "floor-copy"],
    ("loss", "cpu"): ["naive-eager", "ours-fused", "ours-fused-token", "ours-logprobs+loss", "floor-matmul"],
    ("loss", "cuda"): [
        "naive-eager", "torch-compile", "ours-fused", "ours-fused-token", "ours-logprobs+loss",
        "liger-triton-grpo", "liger-fused-linear-grpo", "floor-matmul",
    ],
}  # fmt: skip
IMPL_TEXT = {
    "ours": "tgrpo.advantages.tgrpo_advantage (a1 0.3, a2 0.7; torch on CPU, the Triton kernel on CUDA)",
    "ours-kernel": "the Triton advantage kernel alone, without the NaN/inf check (a host sync) of the API",
    "loop-reference": "the paper's Eq. 2-4 as Python loops (bench.profiling.reference.loop_advantage)",
    "torch-eager": "tgrpo_advantage with backend='torch'",
    "torch-compile": "torch.compile of the eager torch functions (advantage math, or the naive loss)",
    "floor-copy": "floor: one copy of the rewards (reads and writes what the kernel must)",
    "naive-eager": "all [B, T, V] logits in float32, log_softmax, gather, policy_loss (token ratio)",
    "ours-fused": "tgrpo.losses.fused_policy_loss, paper defaults (action ratio, seq-mean over 4 trajectories)",
    "ours-fused-token": "fused_policy_loss with ratio='token', one sequence per step row (Liger's 'grpo' loss)",
    "ours-logprobs+loss": "token_logprobs (recomputes the logits in backward) then policy_loss, token ratio",
    "liger-triton-grpo": "Liger triton_grpo_loss on eager logits; it takes T+1 = 8 positions per step "
    "and drops the last, so its matmul does 8/7 of the others' work",
    "liger-fused-linear-grpo": "Liger LigerFusedLinearGRPOLoss, chunk_size 64, loss_type 'grpo'",
    "floor-matmul": "floor: the two matmuls (logits, input gradient) in the input dtype",
}
FLOORS = {"advantage": "floor-copy", "loss": "floor-matmul"}
LOOP_REFERENCE_MAX_ELEMENTS = 300_000  # the Python loops take about 1 s per 100k rewards
TRAJECTORIES_PER_GROUP = 4  # seq_index of the paper-config loss: N = 4 trajectories share the steps


@dataclass(frozen=True)
class Case:
    kernel: str
    impl: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def id(self) -> str:
        return f"{self.kernel}-{'x'.join(map(str, self.shape))}-{self.dtype}-{self.impl}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Case:
        return cls(d["kernel"], d["impl"], tuple(d["shape"]), d["dtype"])


def cases(device: str, grid: str, kernels: tuple[str, ...]) -> tuple[list[Case], list[str]]:
    """``(cases, notes)``: the grid's cases on ``device``, and why any implementation was left out."""
    notes, out = [], []
    has_liger = importlib.util.find_spec("liger_kernel") is not None
    if device == "cuda" and not has_liger:
        notes.append("liger-kernel is not installed: its GRPO losses were not timed")
    for kernel in kernels:
        for shape in GRIDS[device][grid][kernel]:
            dtype = DTYPES[device] if kernel == "loss" else "float32"
            for impl in IMPLS[(kernel, device)]:
                if impl.startswith("liger") and not has_liger:
                    continue
                if impl == "loop-reference" and math.prod(shape) > LOOP_REFERENCE_MAX_ELEMENTS:
                    notes.append(
                        f"loop reference not timed at {list(shape)}: over {LOOP_REFERENCE_MAX_ELEMENTS} rewards"
                    )
                    continue
                out.append(Case(kernel, impl, shape, dtype))
    return out, notes


def loss_flops(shape: tuple[int, ...]) -> int:
    """Matmul FLOPs of the loss: logits and the input gradient, ``2 * (2 n H V)`` for n = steps * T tokens."""
    steps, tokens, hidden, vocab = shape
    return 4 * steps * tokens * hidden * vocab


def build(case: Case, device: str) -> Callable[[], object]:
    """The call to time for ``case``: inputs are made here, once."""
    torch.manual_seed(0)
    if case.kernel == "advantage":
        return _advantage_call(case, device)
    return _loss_call(case, device)


def _advantage_call(case: Case, device: str) -> Callable[[], object]:
    from bench.profiling.reference import loop_advantage
    from tgrpo.advantages import tgrpo_advantage, tgrpo_advantage_torch

    x = torch.randn(case.shape, device=device)
    if case.impl == "ours":
        return lambda: tgrpo_advantage(x)
    if case.impl == "ours-kernel":
        from tgrpo.kernels.advantage import tgrpo_advantage_triton

        return lambda: tgrpo_advantage_triton(x, None, 0.3, 0.7, 1e-6, 1)
    if case.impl == "torch-eager":
        return lambda: tgrpo_advantage(x, backend="torch")
    if case.impl == "torch-compile":
        compiled = torch.compile(tgrpo_advantage_torch)

        def call() -> None:
            _, bad = compiled(x, None, 0.3, 0.7, 1e-6, 1)
            assert not bool(bad)

        return call
    if case.impl == "loop-reference":
        return lambda: loop_advantage(x)
    if case.impl == "floor-copy":
        return x.clone
    raise ValueError(f"unknown advantage implementation {case.impl!r}")


def _loss_call(case: Case, device: str) -> Callable[[], object]:
    from bench.profiling.reference import naive_fused_loss
    from tgrpo.losses import fused_policy_loss, policy_loss, token_logprobs

    steps, tokens, hidden_size, vocab = case.shape
    dtype = getattr(torch, case.dtype)
    positions = tokens + 1 if case.impl == "liger-triton-grpo" else tokens  # it drops the last position
    hidden = (torch.randn(steps, positions, hidden_size, device=device) / 4).to(dtype).requires_grad_()
    weight = (torch.randn(vocab, hidden_size, device=device) / hidden_size**0.5).to(dtype)
    targets = torch.randint(0, vocab, (steps, tokens), device=device)
    old, ref = (-12 + torch.randn(steps, tokens, device=device) for _ in range(2))
    adv = torch.randn(steps, device=device)
    mask = torch.ones(steps, tokens, dtype=torch.bool, device=device)
    seq = torch.arange(steps, device=device) * TRAJECTORIES_PER_GROUP // steps
    rows = (old, ref, adv, mask)

    def backward(loss: torch.Tensor) -> torch.Tensor:
        """Run the backward pass; the loss value comes back (for the tests; nothing else reads it)."""
        loss.backward()
        hidden.grad = None  # the gradient counts in the call's peak memory, not in the next call's baseline
        return loss.detach()

    if case.impl == "naive-eager":
        return lambda: backward(naive_fused_loss(hidden, weight, targets, *rows, ratio="token").loss)
    if case.impl == "torch-compile":
        compiled = torch.compile(naive_fused_loss)
        return lambda: backward(compiled(hidden, weight, targets, *rows, ratio="token").loss)
    if case.impl == "ours-fused":
        return lambda: backward(fused_policy_loss(hidden, weight, targets, *rows, seq).loss)
    if case.impl == "ours-fused-token":
        return lambda: backward(fused_policy_loss(hidden, weight, targets, *rows, ratio="token").loss)
    if case.impl == "ours-logprobs+loss":
        return lambda: backward(
            policy_loss(token_logprobs(hidden, weight, targets), *rows, ratio="token").loss
        )
    if case.impl == "liger-triton-grpo":
        from liger_kernel.transformers.grpo_loss import triton_grpo_loss

        def liger_triton() -> torch.Tensor:
            logits = hidden @ weight.T
            loss, _ = triton_grpo_loss(
                logits, old, ref, targets, adv, mask.int(), temperature=1.0, beta=0.04,
                eps_low=0.2, eps_high=0.2, loss_type="grpo", reduce=True,
            )  # fmt: skip
            return backward(loss)

        return liger_triton
    if case.impl == "liger-fused-linear-grpo":
        from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss

        fn = LigerFusedLinearGRPOLoss(beta=0.04, chunk_size=64, loss_type="grpo", temperature=1.0)

        def liger_fused() -> torch.Tensor:
            out = fn(
                hidden, weight, targets, mask.int(), adv, ref_per_token_logps=ref, old_per_token_logps=old
            )
            return backward(out[0] if isinstance(out, tuple) else out)

        return liger_fused
    if case.impl == "floor-matmul":
        h2 = hidden.detach().reshape(-1, hidden_size)

        def matmuls() -> torch.Tensor:
            logits = h2 @ weight.T
            return torch.mm(logits, weight)

        return matmuls
    raise ValueError(f"unknown loss implementation {case.impl!r}")
