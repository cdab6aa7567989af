"""Tuning sweep of the fused policy loss on CUDA: chunk size x row-kernel block width x warps, at OpenVLA's
shape (2048 steps x 7 tokens, H 4096, V 32064, bf16, fwd + bwd to the hidden states), with the two-matmul floor
timed in the same run. Same timer as `tgrpo-bench profile` (CUDA events, median of 20 cold-L2 calls).

    python -m bench.benchmarks.loss_tuning --out results/bench/loss_tuning      # needs CUDA and triton
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
from pathlib import Path

import torch

SHAPE = (2048, 7, 4096, 32064)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench/loss_tuning"))
    parser.add_argument("--chunks", default="2048,4096,7168")
    parser.add_argument("--blocks", default="1024,2048,4096")
    parser.add_argument("--warps", default="4,8,16")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("loss_tuning needs a CUDA device")
    from bench.profiling.cases import Case, build
    from bench.profiling.timing import _time_cuda_call
    from tgrpo.kernels import logits as row_kernel
    from tgrpo.provenance import provenance

    def fused_call(chunk: int):
        """`ours-fused` of the profile, its `fused_policy_loss` bound to `chunk_tokens=chunk` while it is built."""
        from tgrpo import losses

        original = losses.fused_policy_loss
        losses.fused_policy_loss = functools.partial(original, chunk_tokens=chunk)
        try:
            return build(Case("loss", "ours-fused", SHAPE, "bfloat16"), "cuda")
        finally:
            losses.fused_policy_loss = original

    rows = []
    floor = _time_cuda_call(build(Case("loss", "floor-matmul", SHAPE, "bfloat16"), "cuda"), 20, 3)
    rows.append({"impl": "floor-matmul", "median_ms": floor.median_ms, "min_ms": floor.min_ms,
                 "peak_extra_mib": floor.peak_extra_mib})
    print(f"floor-matmul {floor.median_ms:.3f} ms (best {floor.min_ms:.3f})", flush=True)
    grid = itertools.product(*(map(int, x.split(",")) for x in (args.chunks, args.blocks, args.warps)))
    for chunk, block, warps in grid:
        row_kernel._BLOCK_V, row_kernel._NUM_WARPS = block, warps
        try:
            t = _time_cuda_call(fused_call(chunk), 20, 3)
            row = {"impl": "ours-fused", "chunk_tokens": chunk, "block_v": block, "num_warps": warps,
                   "median_ms": t.median_ms, "min_ms": t.min_ms, "peak_extra_mib": t.peak_extra_mib}
        except Exception as err:  # noqa: BLE001 - one configuration failing must not lose the others
            row = {"impl": "ours-fused", "chunk_tokens": chunk, "block_v": block, "num_warps": warps,
                   "error": f"{type(err).__name__}: {err}"[:200]}
        rows.append(row)
        print(json.dumps(row), flush=True)
        torch.cuda.empty_cache()
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "shape": SHAPE}
    report = {"meta": meta, "rows": rows, "provenance": provenance()}
    (args.out / "loss_tuning.json").write_text(json.dumps(report, indent=1))
    ok = sorted((r for r in rows if r.get("chunk_tokens") and "error" not in r), key=lambda r: r["median_ms"])
    print("\nbest (median ms, best ms, peak MiB, chunk, block_v, warps):")
    for r in ok[:6]:
        print(f"  {r['median_ms']:.3f}  {r['min_ms']:.3f}  {r['peak_extra_mib']:.0f}  {r['chunk_tokens']}  "
              f"{r['block_v']}  {r['num_warps']}")


if __name__ == "__main__":
    main()
