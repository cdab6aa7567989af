"""The Triton kernels compile for Hopper (sm_90) on a machine without a GPU.

The CPU interpreter that runs ``test_kernels.py`` here executes the kernels as Python and accepts code that
Triton's CUDA compiler rejects: on an H100 (2026-11-26, Triton 3.6) the advantage kernel first failed with a
loop-carried variable that changed shape, then in the thread-locality pass on a row sum accumulated inside a
loop. Compiling ahead of time for ``GPUTarget("cuda", 90, 32)`` (Triton's bundled LLVM and ptxas, no driver)
catches both; each constexpr variant the wrappers launch is compiled, in a subprocess without
``TRITON_INTERPRET``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import itertools, sys
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from tgrpo.kernels.advantage import _tgrpo_advantage_kernel
from tgrpo.kernels.logits import _rows_kernel

def compile_variant(fn, signature, constexprs):
    sig = dict(signature, **{name: "constexpr" for name in constexprs})
    src = ASTSource(fn=fn, signature=sig,
                    constexprs={(fn.arg_names.index(n),): v for n, v in constexprs.items()})
    asm = triton.compile(src, target=GPUTarget("cuda", 90, 32)).asm
    assert "cubin" in asm, sorted(asm)

adv_sig = {"x_ptr": "*fp32", "mask_ptr": "*u8", "out_ptr": "*fp32", "bad_ptr": "*i32", "N": "i32", "M": "i32",
           "a1": "fp32", "a2": "fp32", "eps": "fp32", "ddof": "i32"}
for has_mask, step, traj, compute in itertools.product((False, True), (False, True), (False, True),
                                                       (tl.float32, tl.float64)):
    sig = dict(adv_sig, x_ptr="*fp64", out_ptr="*fp64") if compute == tl.float64 else adv_sig
    compile_variant(_tgrpo_advantage_kernel, sig, {"HAS_MASK": has_mask, "STEP": step, "TRAJ": traj,
                                                   "COMPUTE": compute, "BLOCK_N": 8, "BLOCK_M": 512})
rows_sig = {"z_ptr": "*bf16", "stride_z": "i64", "tgt_ptr": "*i64", "logp_ptr": "*fp32", "g_ptr": "*fp32",
            "valid_ptr": "*u8", "old_ptr": "*fp32", "ref_ptr": "*fp32", "adv_ptr": "*fp32", "w_ptr": "*fp32",
            "V": "i32", "T": "i32", "clip_lo": "fp32", "clip_hi": "fp32", "beta": "fp32", "clamp": "fp32"}
for mode, action, clamp, kl in itertools.product((0, 1, 2), (False, True), (False, True), (False, True)):
    compile_variant(_rows_kernel, rows_sig, {"MODE": mode, "ACTION": action, "CLAMP": clamp, "KL": kl,
                                             "BLOCK_T": 8, "BLOCK_V": 1024})
print("compiled")
"""


def test_triton_kernels_compile_for_sm90_without_a_gpu() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], check=False, cwd=ROOT, env=env, capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr[-3000:]
