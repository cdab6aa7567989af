"""Build the image and run tgrpo-bench in it, through the docker SDK.

``build`` (base image, torch source, streamed classic build), ``run_in_image`` (volumes, GPU device request,
streamed logs, exit code), ``smoke`` (build + a 1-episode eval + results check) and ``ci`` (what .ci/run calls).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.container import spec as S
from bench.container.engine import can_start_engine, engine_session, host_has_gpu
from bench.container.wheels import find_cpu_wheel, pip_find_links_dirs, serve_files

LOCAL_BASE_SCRIPT = S.REPO_ROOT / "docker" / "local-base.sh"
SMOKE_ROOT = S.REPO_ROOT / "results" / "container-smoke"

Log = Callable[[str], None]


def log_stdout(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


class BuildFailed(RuntimeError):
    pass


@dataclass
class BuildResult:
    image_id: str
    tags: tuple[str, ...]
    base: str
    variant: str
    torch_source: str
    seconds: float
    size_bytes: int


def git_commit(repo: Path = S.REPO_ROOT) -> str:
    """HEAD's commit, with ``-dirty`` when the working tree (what the build context copies) differs from it."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, env=env
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True, check=True, env=env
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if status else head


def image_exists(client, ref: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(ref)
    except ImageNotFound:
        return False
    return True


def bootstrap_local_base(client, log: Log = log_stdout, force: bool = False) -> str:
    """Build tgrpo-bench-base:bookworm with mmdebstrap (docker/local-base.sh) and import it with the SDK."""
    if not force and image_exists(client, S.LOCAL_BASE):
        return S.LOCAL_BASE
    log(f"base: bootstrapping {S.LOCAL_BASE} with docker/local-base.sh (mmdebstrap)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tgrpo-base-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        subprocess.run(["bash", str(LOCAL_BASE_SCRIPT), str(tar)], check=True)
        client.api.import_image_from_file(
            str(tar), repository=S.LOCAL_BASE_REPO, tag=S.LOCAL_BASE_TAG, changes=list(S.LOCAL_BASE_CHANGES)
        )
    log(f"base: {S.LOCAL_BASE} ready in {time.monotonic() - started:.0f} s")
    return S.LOCAL_BASE


def resolve_base(client, variant: str, option: str, log: Log = log_stdout) -> str:
    """``auto``: the official base if present or pullable, else the local bootstrapped one; ``local``; or a ref."""
    from docker.errors import APIError

    if option == "local":
        return bootstrap_local_base(client, log)
    if option != "auto":
        return option
    official = S.OFFICIAL_BASES[variant]
    if image_exists(client, official):
        return official
    repo, tag = S.split_tag(official)
    try:
        client.images.pull(repo, tag=tag)
        return official
    except APIError as err:
        log(f"base: cannot pull {official} ({str(err.explanation or err).splitlines()[0]}); using the local base")
    return bootstrap_local_base(client, log)


def build(
    client,
    variant: str,
    base: str = "auto",
    tags: Sequence[str] | None = None,
    torch_wheel: Path | None = None,
    torch_index_url: str | None = None,
    log: Log = log_stdout,
) -> BuildResult:
    """Build the image of ``variant``; returns its id (``sha256:...``), tags, time and size."""
    gpu_host = host_has_gpu(client)
    base_ref = resolve_base(client, variant, base, log)
    tags = tuple(tags) if tags else S.default_tags(variant, S.host_variant(gpu_host))
    with ExitStack() as stack:
        find_links = None
        if torch_index_url:
            torch_source = torch_index_url
        elif variant == "cpu" or torch_wheel:
            version = S.torch_pin()
            search = [Path(torch_wheel)] if torch_wheel else pip_find_links_dirs()
            wheel = find_cpu_wheel(version, search)
            if wheel is not None:
                find_links = stack.enter_context(serve_files([wheel]))
                torch_source = f"{wheel} (served at {find_links})"
            elif torch_wheel:
                raise BuildFailed(f"no torch {version}+cpu cp311 x86_64 wheel at {torch_wheel}")
            else:
                torch_index_url = S.TORCH_CPU_INDEX_URL
                torch_source = torch_index_url
        else:
            torch_source = "package index (CUDA build)"
        build_spec = S.BuildSpec(
            variant=variant,
            base=base_ref,
            tags=tags,
            torch_find_links=find_links,
            torch_index_url=torch_index_url,
            git_commit=git_commit(),
        )
        log(f"build: {', '.join(tags)} from {base_ref}; torch from {torch_source}")
        started = time.monotonic()
        image_id = None
        for chunk in client.api.build(**build_spec.api_build_kwargs()):
            if "stream" in chunk:
                sys.stdout.write(chunk["stream"])
                sys.stdout.flush()
            elif "error" in chunk:
                raise BuildFailed(chunk["error"].strip())
            elif "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
        seconds = time.monotonic() - started
    if image_id is None:
        image_id = client.images.get(tags[0]).id
    for ref in tags[1:]:
        repo, tag = S.split_tag(ref)
        client.api.tag(image_id, repo, tag)
    size = int(client.images.get(image_id).attrs.get("Size", 0))
    result = BuildResult(image_id, tags, base_ref, variant, torch_source, round(seconds, 1), size)
    log(f"build: {image_id} in {seconds:.0f} s, {size / 2**30:.2f} GiB")
    return result


def prepare_host_dir(path: Path) -> None:
    """Create a bind-mount directory; a root caller hands it to the image's user, which runs the container."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and path.stat().st_uid == 0:
        os.chown(path, S.IMAGE_UID, S.IMAGE_UID)


def run_in_image(
    client,
    image: str,
    command: Sequence[str],
    results: Path,
    datasets: Path | None = None,
    checkpoints: Path | None = None,
    gpus: str = "auto",
    entrypoint: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
    echo: bool = True,
) -> tuple[int, str]:
    """Run ``tgrpo-bench COMMAND`` (or ``entrypoint``) in ``image``; stream its output; return (exit code, output)."""
    image_obj = client.images.get(image)
    for path in (results, checkpoints):
        if path is not None:
            prepare_host_dir(Path(path))
    gpus = S.resolve_gpus(gpus, host_has_gpu(client))
    user = S.container_user(os.getuid(), os.getgid())
    kwargs = S.run_kwargs(
        image_ref=image,
        image_id=image_obj.id,
        command=list(command),
        binds=S.volume_binds(Path(results), datasets, checkpoints),
        gpus=gpus,
        user=user,
        entrypoint=entrypoint,
        extra_env=extra_env,
    )
    container = client.containers.run(**kwargs)
    output: list[str] = []
    try:
        for chunk in container.logs(stream=True, follow=True):
            text = chunk.decode("utf-8", errors="replace")
            output.append(text)
            if echo:
                sys.stdout.write(text)
                sys.stdout.flush()
        code = int(container.wait()["StatusCode"])
    except KeyboardInterrupt:
        container.stop(timeout=10)
        raise
    finally:
        container.remove(force=True)
    return code, "".join(output)


def _probe(client, image: str, results: Path, gpus: str, log: Log) -> dict:
    code, output = run_in_image(
        client, image, ["-c", S.EGL_PROBE], results=results, gpus=gpus, entrypoint=["python"], echo=False
    )
    lines = [line for line in output.splitlines() if line.startswith('{"egl_probe"')]
    if code != 0 or not lines:
        sys.stdout.write(output)
        raise RuntimeError(f"EGL probe failed in {image} (exit {code})")
    probe = json.loads(lines[-1])
    log(f"smoke: EGL probe {probe}")
    return probe


def smoke(
    client,
    variant: str,
    base: str = "auto",
    skip_build: bool = False,
    gpus: str = "auto",
    results_root: Path = SMOKE_ROOT,
    eval_check: bool = True,
    reproduce_check: bool = False,
    log: Log = log_stdout,
    **build_options,
) -> int:
    """Build, then in the image: ``--help``, an EGL render probe, a 1-episode ``eval`` whose rows are checked, and
    with ``reproduce_check`` the smoke reproduction pipeline whose report and rows are checked."""
    report: dict = {"variant": variant}
    if skip_build:
        image = f"{S.IMAGE_REPO}:{variant}"
        report["image_id"] = client.images.get(image).id
    else:
        built = build(client, variant, base=base, log=log, **build_options)
        image = built.tags[0]
        report["build"] = asdict(built)
        report["image_id"] = built.image_id
    out = Path(results_root) / variant
    out.mkdir(parents=True, exist_ok=True)
    smoke_dir = out / Path(S.SMOKE_OUT).name
    if smoke_dir.exists():
        shutil.rmtree(smoke_dir)

    code, _ = run_in_image(client, image, ["--help"], results=out, gpus=gpus)
    report["help_exit"] = code
    if code != 0:
        log(f"smoke: FAILED: `tgrpo-bench --help` exited {code} in {image}")
        return _finish(report, out, 1, log)
    report["egl_probe"] = _probe(client, image, out, gpus, log)
    if not eval_check:
        return _finish(report, out, 0, log)

    log(f"smoke: tgrpo-bench {' '.join(S.SMOKE_ARGS)}")
    started = time.monotonic()
    code, _ = run_in_image(client, image, list(S.SMOKE_ARGS), results=out, gpus=gpus)
    report["eval_exit"] = code
    report["eval_seconds"] = round(time.monotonic() - started, 1)
    if code != 0:
        log(f"smoke: FAILED: eval exited {code} in {image}")
        return _finish(report, out, 1, log)
    check = S.check_episodes(smoke_dir / "episodes.jsonl", report["image_id"])
    summaries = sorted(p.name for p in smoke_dir.glob("summary*"))
    if not summaries:
        check.problems.append(f"no summary file in {smoke_dir}")
    report["results"] = {"rows": check.rows, "digest_recorded": check.digest_recorded, "summaries": summaries,
                         "problems": check.problems}
    if not check.ok:
        log("smoke: FAILED: " + "; ".join(check.problems))
        return _finish(report, out, 1, log)
    log(f"smoke: ok: {check.rows} row(s) with provenance (image digest recorded), {', '.join(summaries)}")
    if reproduce_check:
        return _finish(report, out, _reproduce(client, image, out, gpus, report, log), log)
    return _finish(report, out, 0, log)


def _reproduce(client, image: str, out: Path, gpus: str, report: dict, log: Log) -> int:
    """`tgrpo-bench reproduce` (object, smoke) in the image, from a fresh store; 0 when its results check out."""
    store = out / Path(S.REPRODUCE_STORE).name
    if store.exists():
        shutil.rmtree(store)
    log(f"smoke: tgrpo-bench {' '.join(S.REPRODUCE_ARGS)}")
    started = time.monotonic()
    code, _ = run_in_image(client, image, list(S.REPRODUCE_ARGS), results=out, gpus=gpus)
    report["reproduce_exit"] = code
    report["reproduce_seconds"] = round(time.monotonic() - started, 1)
    if code != 0:
        log(f"smoke: FAILED: reproduce exited {code} in {image}")
        return 1
    check = S.check_reproduction(store, report["image_id"])
    report["reproduce_results"] = {"rows": check.rows, "digest_recorded": check.digest_recorded,
                                   "problems": check.problems}
    if not check.ok:
        log("smoke: FAILED: " + "; ".join(check.problems))
        return 1
    log(f"smoke: reproduce ok in {report['reproduce_seconds']:.0f} s: report written, {check.rows} episode row(s) "
        "with provenance (image digest recorded)")
    return 0


def _finish(report: dict, out: Path, code: int, log: Log) -> int:
    report["ok"] = code == 0
    path = out / "smoke-report.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    log(f"smoke: report in {path}")
    return code


def ci(gpu_variant: bool = True, require: bool | None = None, log: Log = log_stdout) -> int:
    """The container check of .ci/run: start an engine (or skip), CPU build + smoke, GPU variant on the local base."""
    if require is None:
        require = os.environ.get("TGRPO_CONTAINER_CI", "") == "require"
    if not can_start_engine():
        log("container check: SKIPPED: no Docker engine answers and none can be started here")
        return 1 if require else 0
    started = time.monotonic()
    with engine_session(start=True, keep=False) as client:
        code = smoke(client, "cpu", base="auto", reproduce_check=True, log=log)
        if code == 0 and gpu_variant:
            # The CUDA base cannot be pulled here: the GPU variant (CUDA torch, NVIDIA EGL wiring) is built
            # on the local Debian base and must start and render (Mesa fallback) without a GPU.
            code = smoke(client, "gpu", base="local", gpus="none", eval_check=False, log=log)
    log(f"container check: {'ok' if code == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return code
