"""`tgrpo-bench profile`: the grid, each timed call, the report and its targets, and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bench.cli import main
from bench.profiling import report as rep
from bench.profiling.cases import GRIDS, IMPL_TEXT, IMPLS, Case, build, cases, loss_flops
from bench.profiling.reference import loop_advantage
from bench.profiling.timing import Timing


def test_grids_cover_the_target_shapes() -> None:
    assert (2048, 7, 4096, 32064) in GRIDS["cuda"]["full"]["loss"]
    assert (1024, 8, 512) in GRIDS["cuda"]["full"]["advantage"]
    assert (64, 8, 512) in GRIDS["cpu"]["full"]["advantage"]
    assert set(IMPL_TEXT) >= {impl for impls in IMPLS.values() for impl in impls}
    todo, notes = cases("cpu", "full", ("advantage", "loss"))
    ids = {c.id for c in todo}
    assert "advantage-64x8x512-float32-loop-reference" in ids
    assert "advantage-1024x8x512-float32-loop-reference" not in ids  # too slow for the loops
    assert any("loop reference not timed" in n for n in notes)
    assert all(c.dtype == "float32" for c in todo)
    assert Case.from_dict(todo[0].to_dict()) == todo[0]
    assert loss_flops((2048, 7, 4096, 32064)) == 4 * 2048 * 7 * 4096 * 32064


def test_every_cpu_call_computes_what_it_names() -> None:
    """Each timed CPU call of the smoke grid returns its kernel's result on the case's inputs: the advantage as the
    paper's loops compute it from the seeded rewards, the three token-ratio losses (eager, fused, log-probs then
    loss) one value, the paper-config loss another finite value, the floor the [steps * T, H] input gradient."""
    todo, _ = cases("cpu", "smoke", ("advantage", "loss"))
    out = {c.impl: build(c, "cpu")() for c in todo}
    assert len(out) == len(todo) == len(IMPLS[("advantage", "cpu")]) + len(IMPLS[("loss", "cpu")])
    (adv_shape,), ((steps, tokens, hidden, _),) = GRIDS["cpu"]["smoke"]["advantage"], GRIDS["cpu"]["smoke"]["loss"]
    torch.manual_seed(0)
    rewards = torch.randn(adv_shape)
    assert torch.equal(out["floor-copy"], rewards)
    expected = loop_advantage(rewards)
    assert torch.equal(out["loop-reference"], expected)
    torch.testing.assert_close(out["ours"], expected.float(), rtol=1e-5, atol=1e-5)
    token = out["naive-eager"]
    assert token.shape == () and math.isfinite(token.item())
    torch.testing.assert_close(out["ours-fused-token"], token, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["ours-logprobs+loss"], token, rtol=1e-5, atol=1e-6)
    assert math.isfinite(out["ours-fused"].item()) and abs(out["ours-fused"].item() - token.item()) > 1e-6
    assert out["floor-matmul"].shape == (steps * tokens, hidden)


def _timings(todo: list[Case], ms: dict[str, float]) -> dict[str, Timing]:
    return {c.id: Timing(ms.get(c.impl, 1.0), 0.1, 5, None) for c in todo}


def test_report_ratios_and_cpu_target() -> None:
    todo = [
        Case("advantage", impl, (64, 8, 512), "float32") for impl in ("ours", "loop-reference", "floor-copy")
    ]
    rows = rep.results(todo, _timings(todo, {"ours": 2.0, "loop-reference": 500.0, "floor-copy": 0.05}))
    assert [r["ratio_to_floor"] for r in rows] == pytest.approx([40.0, 10000.0, 1.0])
    env = rep.environment("cpu")
    targets = {t["key"]: t for t in rep.evaluate_targets(rows, env)}
    assert targets["advantage-cpu-vs-loops"]["status"] == "met"
    assert targets["advantage-cpu-vs-loops"]["measured"] == "250x"
    assert targets["loss-openvla-h100"]["status"] == "unmeasured"
    assert "needs a cuda run" in targets["advantage-h100"]["note"]
    text = rep.markdown(
        {
            "environment": env,
            "timer": "t",
            "command": "c",
            "created": "now",
            "results": rows,
            "targets": list(targets.values()),
            "notes": ["n"],
        }
    )
    assert "| [64, 8, 512] | float32 | ours | 2 |" in text and "250x" in text


def test_cpu_speedup_is_judged_on_the_best_round() -> None:
    todo = [Case("advantage", impl, (64, 8, 512), "float32") for impl in ("ours", "loop-reference")]
    timings = {
        todo[0].id: Timing(12.0, 5.0, 80, min_ms=2.5),
        todo[1].id: Timing(760.0, 50.0, 3, min_ms=370.0),
    }
    rows = rep.results(todo, timings)
    target = {t["key"]: t for t in rep.evaluate_targets(rows, rep.environment("cpu"))}[
        "advantage-cpu-vs-loops"
    ]
    assert target["status"] == "met" and target["measured"] == "148x (median 63x)"


def test_gpu_targets_are_judged_on_cuda_runs() -> None:
    shape = (2048, 7, 4096, 32064)
    todo = [Case("loss", impl, shape, "bfloat16") for impl in ("ours-fused", "floor-matmul")]
    timings = {
        todo[0].id: Timing(10.5, 0.1, 20, 280.0),
        todo[1].id: Timing(9.5, 0.1, 20, 230.0),
    }
    rows = rep.results(todo, timings)
    assert rows[0]["matmul_tflops"] == pytest.approx(loss_flops(shape) / 10.5e-3 / 1e12)
    env = {"device": {"kind": "cuda", "name": "NVIDIA H100 80GB HBM3"}}
    target = {t["key"]: t for t in rep.evaluate_targets(rows, env)}["loss-openvla-h100"]
    assert target["status"] == "met" and target["measured"] == "10.500 ms, 280 MiB"
    timings[todo[0].id] = Timing(10.5, 0.1, 20, 320.0)
    target = {t["key"]: t for t in rep.evaluate_targets(rep.results(todo, timings), env)}["loss-openvla-h100"]
    assert target["status"] == "missed"


def test_cli_writes_json_and_markdown(tmp_path) -> None:
    """`--smoke` (the smoke grid, both kernels): one timed row per case, each a finite positive time, and the
    provenance block."""
    assert main(["profile", "--smoke", "--device", "cpu", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "kernels.json").read_text())
    assert report["schema"] == rep.SCHEMA and report["environment"]["device"]["kind"] == "cpu"
    assert report["environment"]["versions"]["torch"] == torch.__version__
    assert [r["id"] for r in report["results"]] == [c.id for c in cases("cpu", "smoke", ("advantage", "loss"))[0]]
    assert all(math.isfinite(r["median_ms"]) and r["median_ms"] > 0 and r["error"] is None
               for r in report["results"])
    assert report["provenance"]["packages"]["torch"] and "git_sha" in report["provenance"]
    assert "pytest-benchmark" in report["timer"]
    assert report["environment"]["device"]["torch_threads"] == 1  # the CPU default, restored afterwards
    assert "# Kernel profile" in (tmp_path / "kernels.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cli_refuses_cuda_without_a_gpu(tmp_path, capsys) -> None:
    assert main(["profile", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
