"""The small SFT checkpoint the `sft` and `rl` cases start from: how it was made, and making it again.

Expert demonstrations from fresh placements of LIBERO-Object task 0 (never the official states), then behaviour
cloning of a small state-variant tiny VLA with the project's SFT code. The checkpoint is committed: the cases
guard what the simulator and the code do with fixed weights, so it is retrained only when the checkpoint format
changes (`tgrpo-bench record --train-checkpoint`), never to make a case pass.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.regression.cases import SFT_CHECKPOINT

RECIPE = {
    "suite": "libero_object", "task_id": 0, "demos": 10, "action_noise": 0.1, "demo_seed": 0,
    "epochs": 40, "model": {"d_model": 48, "n_layers": 2}, "sft_seed": 0,
}


def train_checkpoint(reference_dir: Path, work_dir: Path, workers: int = 2) -> Path:
    """Demos + SFT under RECIPE in `work_dir`; copies the best checkpoint to `reference_dir/sft_checkpoint` and
    writes `sft_checkpoint.json` beside it (recipe, content hash, SFT metrics, provenance block)."""
    from baselines.sft.config import SFTConfig
    from bench.runs import run_sft
    from tgrpo.data.generate import DemoRequest, generate
    from tgrpo.policies.trainable import checkpoint_sha256
    from tgrpo.provenance import provenance

    work_dir = Path(work_dir)
    demos = DemoRequest(suite=RECIPE["suite"], task_ids=(RECIPE["task_id"],), per_task=RECIPE["demos"],
                        out_dir=work_dir / "demos", keypose_root=work_dir / "keyposes", seed=RECIPE["demo_seed"],
                        workers=workers, action_noise=RECIPE["action_noise"])
    generate(demos, progress=False)
    cfg = SFTConfig(suite=RECIPE["suite"], demos_dir=work_dir / "demos", out_dir=work_dir / "sft", profile="smoke",
                    epochs=RECIPE["epochs"], model=dict(RECIPE["model"]), seed=RECIPE["sft_seed"])
    record = run_sft(cfg, progress=False)
    target = Path(reference_dir) / SFT_CHECKPOINT
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in ("model.pt", "policy.json"):
        shutil.copy2(record.best_checkpoint / name, target / name)
    meta = {"recipe": RECIPE, "sha256": checkpoint_sha256(target), "sft_final": record.final,
            "provenance": provenance()}
    (Path(reference_dir) / f"{SFT_CHECKPOINT}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return target
