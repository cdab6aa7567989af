"""Pure decisions of the container driver: build arguments, tags, GPU requests, volumes, run settings.

Nothing here talks to an engine, so the unit tests check it against hand-written expectations.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tgrpo.jsonl import parse_rows

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = "docker/Dockerfile"
IMAGE_REPO = "tgrpo-bench"
VARIANTS = ("cpu", "gpu")

# Bases used when a registry answers; `local` is the bootstrapped Debian base (docker/local-base.sh).
OFFICIAL_BASES = {
    "cpu": "debian:bookworm-slim",
    # torch 2.13.0's CUDA build needs CUDA 13 (cuda-toolkit 13.0.x wheels); Ubuntu 22.04 has python3.11.
    "gpu": "nvidia/cuda:13.0.1-runtime-ubuntu22.04",
}
LOCAL_BASE_REPO = "tgrpo-bench-base"
LOCAL_BASE_TAG = "bookworm"
LOCAL_BASE = f"{LOCAL_BASE_REPO}:{LOCAL_BASE_TAG}"
# Image config for `docker import` of the bootstrapped root filesystem.
LOCAL_BASE_CHANGES = ("ENV LANG=C.UTF-8", 'CMD ["bash"]')
# Public CPU wheel index, used when no local +cpu wheel is found.
TORCH_CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"

# Inside the image (docker/Dockerfile).
IMAGE_UID = 1000
RESULTS_DIR = "/results"
DATASETS_DIR = "/datasets"
CHECKPOINTS_DIR = "/checkpoints"
BUILD_INFO_PATH = "/etc/tgrpo-bench/image.json"

# Set by the driver at run time so results record which image produced them (the provenance module reads it).
IMAGE_ENV = "TGRPO_BENCH_IMAGE"
DIGEST_ENV = "TGRPO_BENCH_IMAGE_DIGEST"

SMOKE_OUT = f"{RESULTS_DIR}/smoke"
SMOKE_ARGS = (
    "eval", "--policy", "random", "--suite", "object", "--tasks", "0", "--episodes", "1", "--out", SMOKE_OUT,
)

# The whole reproduction pipeline in the image (demos, SFT, SFT evaluation, TGRPO and GRPO), store in /results.
REPRODUCE_STORE = f"{RESULTS_DIR}/reproduce"
REPRODUCE_ARGS = ("reproduce", "--suite", "object", "--profile", "smoke", "--store", REPRODUCE_STORE, "--no-progress")
REPRODUCE_REPORT = "libero_object-smoke/report.json"

# Builds one LIBERO-Object env in the image and renders a frame with EGL (Mesa on CPU hosts).
EGL_PROBE = """\
import json, os, time
t0 = time.time()
from libero.libero import benchmark, get_libero_path
from libero.libero.envs import OffScreenRenderEnv
suite = benchmark.get_benchmark_dict()["libero_object"]()
task = suite.get_task(0)
bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
env = OffScreenRenderEnv(bddl_file_name=bddl, camera_heights=128, camera_widths=128)
env.seed(0)
env.reset()
obs = env.set_init_state(suite.get_task_init_states(0)[0])
image = obs["agentview_image"]
import torch
print(json.dumps({"egl_probe": "ok", "mujoco_gl": os.environ.get("MUJOCO_GL"), "shape": list(image.shape),
                  "mean_pixel": round(float(image.mean()), 2), "torch": torch.__version__,
                  "seconds": round(time.time() - t0, 1)}))
env.close()
"""


@dataclass(frozen=True)
class BuildSpec:
    """What to build: the variant, its base and where torch comes from."""

    variant: str
    base: str
    tags: tuple[str, ...]
    torch_find_links: str | None = None
    torch_index_url: str | None = None
    git_commit: str = "unknown"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {self.variant!r}")
        if not self.tags:
            raise ValueError("at least one tag is needed")
        if self.torch_find_links and self.torch_index_url:
            raise ValueError("give torch_find_links or torch_index_url, not both")
        if self.variant == "cpu" and not (self.torch_find_links or self.torch_index_url):
            # Without either, pip takes torch's default Linux build from the index: the multi-GB CUDA one.
            raise ValueError("the cpu variant needs torch_find_links (a +cpu wheel) or torch_index_url")

    def build_args(self) -> dict[str, str]:
        """The Dockerfile's ARGs for this spec."""
        args = {"BASE": self.base, "VARIANT": self.variant, "GIT_COMMIT": self.git_commit}
        if self.torch_find_links:
            args["TORCH_FIND_LINKS"] = self.torch_find_links
        if self.torch_index_url:
            args["TORCH_INDEX_URL"] = self.torch_index_url
        if self.variant == "cpu":
            args["TORCH_LOCAL_LABEL"] = "cpu"
        return args

    @property
    def needs_host_network(self) -> bool:
        """A wheel server on the host's loopback is reachable from RUN steps only with the host's network."""
        source = self.torch_find_links or self.torch_index_url or ""
        return bool(re.match(r"https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(/|$)", source))

    def api_build_kwargs(self, context: Path = REPO_ROOT) -> dict:
        """Keyword arguments for docker SDK's low-level ``APIClient.build`` (classic builder, streamed)."""
        kwargs = {
            "path": str(context),
            "dockerfile": DOCKERFILE,
            "tag": self.tags[0],
            "buildargs": self.build_args(),
            "rm": True,
            "forcerm": True,
            "pull": False,
            "decode": True,
        }
        if self.needs_host_network:
            kwargs["network_mode"] = "host"
        return kwargs


def default_tags(variant: str, host_variant: str) -> tuple[str, ...]:
    """``tgrpo-bench:<variant>``; the host's own variant is also ``tgrpo-bench:latest`` (``docker run tgrpo-bench``)."""
    tags = [f"{IMAGE_REPO}:{variant}"]
    if variant == host_variant:
        tags.append(f"{IMAGE_REPO}:latest")
    return tuple(tags)


def split_tag(ref: str) -> tuple[str, str]:
    """``repo[:tag]`` -> (repo, tag); a registry port is not a tag."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return name, tag


def parse_gpus(value: str | None) -> list[dict]:
    """Device requests for ``--gpus``, with the docker CLI's meanings.

    ``none``/empty: none; ``all``: every GPU; ``N``: N GPUs; ``device=0,1`` or ``0,1``: those devices.
    The graphics capability (EGL) comes from NVIDIA_DRIVER_CAPABILITIES in the image, not from here.
    """
    from docker.types import DeviceRequest

    if value is None or value.strip() in ("", "none"):
        return []
    value = value.strip()
    if value == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if value.isdigit():
        count = int(value)
        return [DeviceRequest(count=count, capabilities=[["gpu"]])] if count > 0 else []
    ids = value.removeprefix("device=")
    device_ids = [part.strip() for part in ids.split(",") if part.strip()]
    if not device_ids:
        raise ValueError(f"bad --gpus value {value!r}")
    return [DeviceRequest(device_ids=device_ids, capabilities=[["gpu"]])]


def resolve_gpus(option: str, host_has_gpu: bool) -> str:
    """``auto`` means every GPU on a GPU host and none elsewhere."""
    if option == "auto":
        return "all" if host_has_gpu else "none"
    return option


def host_variant(host_has_gpu: bool) -> str:
    return "gpu" if host_has_gpu else "cpu"


def volume_binds(results: Path, datasets: Path | None = None, checkpoints: Path | None = None) -> dict[str, dict]:
    """Host directories mounted at the image's volumes (datasets read-only)."""
    binds = {str(Path(results).resolve()): {"bind": RESULTS_DIR, "mode": "rw"}}
    if datasets is not None:
        binds[str(Path(datasets).resolve())] = {"bind": DATASETS_DIR, "mode": "ro"}
    if checkpoints is not None:
        binds[str(Path(checkpoints).resolve())] = {"bind": CHECKPOINTS_DIR, "mode": "rw"}
    return binds


def container_user(host_uid: int, host_gid: int) -> str | None:
    """Run as the caller so files in bind mounts are theirs; root callers keep the image's non-root user."""
    if host_uid == 0:
        return None
    return f"{host_uid}:{host_gid}"


def run_environment(image_ref: str, image_id: str, user: str | None, extra: dict[str, str] | None = None) -> dict:
    """Environment of a run: which image this is (for provenance), plus a writable HOME for a foreign uid."""
    env = {IMAGE_ENV: image_ref, DIGEST_ENV: image_id}
    if user is not None:
        env["HOME"] = "/tmp"
    env.update(extra or {})
    return env


def run_kwargs(
    image_ref: str,
    image_id: str,
    command: list[str],
    binds: dict[str, dict],
    gpus: str,
    user: str | None,
    entrypoint: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict:
    """Keyword arguments for ``client.containers.run`` (detached; the driver streams logs and waits)."""
    kwargs = {
        "image": image_id,
        "command": list(command),
        "detach": True,
        "environment": run_environment(image_ref, image_id, user, extra_env),
        "volumes": binds,
        "device_requests": parse_gpus(gpus),
        "shm_size": "2g",
        "init": True,
        "labels": {"io.tgrpo-bench.run": "1"},
    }
    if user is not None:
        kwargs["user"] = user
    if entrypoint is not None:
        kwargs["entrypoint"] = entrypoint
    return kwargs


def torch_pin(constraints: Path = REPO_ROOT / "constraints.txt") -> str:
    """The torch version pinned in constraints.txt (e.g. ``2.13.0``)."""
    for line in Path(constraints).read_text().splitlines():
        match = re.fullmatch(r"torch==([^\s;#]+)", line.strip())
        if match:
            return match.group(1)
    raise ValueError(f"no torch== pin in {constraints}")


def cpu_wheel_name_matches(name: str, version: str, python_tag: str = "cp311") -> bool:
    """Is ``name`` torch ``version``'s +cpu wheel for this Python on x86_64 Linux?"""
    pattern = rf"torch-{re.escape(version)}\+cpu-{python_tag}-{python_tag}-(manylinux|linux)[^/]*x86_64\.whl"
    return re.fullmatch(pattern, name) is not None


@dataclass
class ResultsCheck:
    """Outcome of checking an ``episodes.jsonl`` written by ``tgrpo-bench eval`` in the image."""

    rows: int = 0
    problems: list[str] = field(default_factory=list)
    digest_recorded: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def check_reproduction(store: Path, image_id: str | None) -> ResultsCheck:
    """The report lists the SFT and RL rows, and every evaluation's episodes carry provenance with the image."""
    check = ResultsCheck()
    report = Path(store) / REPRODUCE_REPORT
    if not report.is_file():
        check.problems.append(f"{report} was not written")
        return check
    methods = {row.get("method") for row in json.loads(report.read_text()).get("rows", [])}
    if not {"sft", "tgrpo", "grpo"} <= methods:
        check.problems.append(f"{report} lists methods {sorted(methods)}, expected sft, tgrpo and grpo")
    episodes = sorted(Path(store).glob("eval/*/eval/episodes.jsonl")) + sorted(
        Path(store).glob("rl/*/run/eval/episodes.jsonl"))
    if not episodes:
        check.problems.append(f"no evaluation episodes under {store}")
    for path in episodes:
        one = check_episodes(path, image_id)
        check.rows += one.rows
        check.digest_recorded = check.digest_recorded or one.digest_recorded
        check.problems += [f"{path.relative_to(store)}: {p}" for p in one.problems]
    return check


def check_episodes(path: Path, image_id: str | None) -> ResultsCheck:
    """Every row is a JSON object with a ``provenance`` object; the image digest appears in provenance."""
    check = ResultsCheck()
    path = Path(path)
    if not path.is_file():
        check.problems.append(f"{path} was not written")
        return check
    parsed = parse_rows(path)
    check.problems += [f"line {bad.number}: {bad.reason}" for bad in parsed.bad]
    for number, row in zip(parsed.numbers, parsed.rows, strict=True):
        check.rows += 1
        provenance = row.get("provenance")
        if not isinstance(provenance, dict) or not provenance:
            check.problems.append(f"line {number}: no provenance block")
            continue
        if image_id and image_id in json.dumps(provenance):
            check.digest_recorded = True
    if check.rows == 0:
        check.problems.append(f"{path} has no rows")
    elif image_id and not check.digest_recorded:
        check.problems.append(f"the image digest {image_id} ({DIGEST_ENV}) is not in any row's provenance")
    return check
