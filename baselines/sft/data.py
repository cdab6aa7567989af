"""Demonstration datasets of a suite -> SFT arrays.

Reads the LIBERO-format HDF5 files that `tgrpo-bench demos` writes (one per task under `<demos>/<suite>/`). The
state variant needs `obs/privileged` and the layout stored with it (our datasets have both; official LIBERO
files do not, so they serve the image variant only). The instruction is the task's language, as in evaluation.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np

from baselines.sft.train import SFTData


def dataset_files(demos_dir: Path, suite: str) -> list[Path]:
    files = sorted((Path(demos_dir) / suite).glob("*.hdf5"))
    if not files:
        raise FileNotFoundError(f"no demonstration files in {Path(demos_dir) / suite}; "
                                f"generate them with `tgrpo-bench demos --suite {suite}`")
    return files


def task_language(suite: str, bddl_file_name: str, path: Path) -> str:
    """`task.language` of the suite's task whose BDDL file the dataset names (the BDDL's own language line, which
    LIBERO stores in `problem_info`, differs for some tasks: the policy must see the evaluation's instruction)."""
    from tgrpo.envs.libero_env import task_info
    from tgrpo.envs.protocol import TASKS_PER_SUITE

    name = Path(str(bddl_file_name)).name
    for task_id in range(TASKS_PER_SUITE):
        info = task_info(suite, task_id)
        if Path(info.bddl_file).name == name:
            return info.instruction
    raise ValueError(f"{path}: its BDDL file {name!r} is not a task of {suite}")


def load_sft_data(demos_dir: Path, suite: str, variant: str, max_demos_per_task: int | None = None) -> SFTData:
    """All demos of a suite as flattened steps; state vectors are zero-padded to the suite's longest.

    Every file is opened before any is read, so a corrupt one is reported at once (ValueError naming it)."""
    from tgrpo.data.hdf5 import LiberoDataset

    states, images, wrists, instructions, actions, demo_ids = [], [], [], [], [], []
    next_demo = 0
    with ExitStack() as stack:
        datasets = [(path, stack.enter_context(LiberoDataset(path))) for path in dataset_files(demos_dir, suite)]
        # imports the simulator (and its import-time warnings): only once every file opened
        from tgrpo.envs.privileged import PrivilegedLayout

        for path, ds in datasets:
            instruction = task_language(suite, ds.attrs.get("bddl_file_name", ""), path)
            layout = ds.json_attr("privileged_layout")
            if variant == "state" and layout is None:
                raise ValueError(f"{path} has no privileged layout: the state variant needs our datasets")
            for k, demo in enumerate(ds):
                if max_demos_per_task is not None and k >= max_demos_per_task:
                    break
                t = len(demo)
                if variant == "state":
                    states.append(PrivilegedLayout.from_dict(layout).state_vector(demo.obs["privileged"]))
                else:
                    images.append(demo.obs["agentview_rgb"])
                    if "eye_in_hand_rgb" in demo.obs:
                        wrists.append(demo.obs["eye_in_hand_rgb"])
                instructions += [instruction] * t
                actions.append(demo.actions)
                demo_ids.append(np.full(t, next_demo))
                next_demo += 1
    return SFTData(
        state=_pad(states) if states else None,
        image=np.concatenate(images) if images else None,
        wrist=np.concatenate(wrists) if wrists and len(wrists) == len(images) else None,
        instruction=instructions, actions=np.concatenate(actions).astype(np.float64),
        demo=np.concatenate(demo_ids),
    )


def _pad(parts: list[np.ndarray]) -> np.ndarray:
    width = max(p.shape[1] for p in parts)
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in parts]).astype(np.float32)
