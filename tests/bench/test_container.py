"""The container driver (bench.container): unit tests of its decisions, and the in-image smoke (marked docker).

The unit tests need no engine; they compare against hand-written expectations. The docker-marked test
builds the CPU image and runs a 1-episode eval in it (`make docker-smoke`); it is skipped when no engine
answers. Run it with `pytest -m docker tests/bench/test_container.py`.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from bench.container import spec as S
from bench.container.wheels import find_cpu_wheel, serve_files

WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"


# --- build arguments -------------------------------------------------------------------------------------------


def test_cpu_build_args_with_served_wheel():
    spec = S.BuildSpec(
        variant="cpu",
        base="tgrpo-bench-base:bookworm",
        tags=("tgrpo-bench:cpu", "tgrpo-bench:latest"),
        torch_find_links="http://127.0.0.1:40123/",
        git_commit="abc123",
    )
    assert spec.build_args() == {
        "BASE": "tgrpo-bench-base:bookworm",
        "VARIANT": "cpu",
        "GIT_COMMIT": "abc123",
        "TORCH_FIND_LINKS": "http://127.0.0.1:40123/",
        "TORCH_LOCAL_LABEL": "cpu",
    }
    assert spec.needs_host_network


def test_cpu_build_kwargs_for_the_sdk():
    spec = S.BuildSpec(
        variant="cpu", base="b:1", tags=("tgrpo-bench:cpu",), torch_find_links="http://127.0.0.1:9/"
    )
    assert spec.api_build_kwargs(Path("/src")) == {
        "path": "/src",
        "dockerfile": "docker/Dockerfile",
        "tag": "tgrpo-bench:cpu",
        "buildargs": {
            "BASE": "b:1",
            "VARIANT": "cpu",
            "GIT_COMMIT": "unknown",
            "TORCH_FIND_LINKS": "http://127.0.0.1:9/",
            "TORCH_LOCAL_LABEL": "cpu",
        },
        "rm": True,
        "forcerm": True,
        "pull": False,
        "decode": True,
        "network_mode": "host",
    }


def test_gpu_build_args_take_torch_from_the_index():
    spec = S.BuildSpec(variant="gpu", base="nvidia/cuda:13.0.1-runtime-ubuntu22.04", tags=("tgrpo-bench:gpu",))
    assert spec.build_args() == {
        "BASE": "nvidia/cuda:13.0.1-runtime-ubuntu22.04",
        "VARIANT": "gpu",
        "GIT_COMMIT": "unknown",
    }
    assert not spec.needs_host_network
    assert "network_mode" not in spec.api_build_kwargs()


def test_cpu_with_public_cpu_index_needs_no_host_network():
    spec = S.BuildSpec(
        variant="cpu", base="debian:bookworm-slim", tags=("t:1",), torch_index_url="https://download.pytorch.org/whl/cpu"
    )
    assert spec.build_args()["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert "TORCH_FIND_LINKS" not in spec.build_args()
    assert not spec.needs_host_network


def test_cpu_without_a_torch_source_is_refused():
    # It would silently install the multi-GB CUDA build.
    with pytest.raises(ValueError, match="cpu variant needs"):
        S.BuildSpec(variant="cpu", base="b", tags=("t",))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variant": "tpu", "base": "b", "tags": ("t",)}, "variant must be"),
        ({"variant": "gpu", "base": "b", "tags": ()}, "tag"),
        ({"variant": "gpu", "base": "b", "tags": ("t",), "torch_find_links": "x", "torch_index_url": "y"}, "not both"),
    ],
)
def test_bad_specs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        S.BuildSpec(**kwargs)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://127.0.0.1:8000/", True),
        ("http://localhost/", True),
        ("http://127.0.0.1", True),
        ("https://download.pytorch.org/whl/cpu", False),
        ("http://127.0.0.1.example.org/", False),
    ],
)
def test_host_network_only_for_loopback(url, expected):
    spec = S.BuildSpec(variant="gpu", base="b", tags=("t",), torch_find_links=url)
    assert spec.needs_host_network is expected


def test_default_tags_give_latest_to_the_hosts_variant():
    assert S.default_tags("cpu", "cpu") == ("tgrpo-bench:cpu", "tgrpo-bench:latest")
    assert S.default_tags("gpu", "cpu") == ("tgrpo-bench:gpu",)
    assert S.default_tags("gpu", "gpu") == ("tgrpo-bench:gpu", "tgrpo-bench:latest")


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("tgrpo-bench", ("tgrpo-bench", "latest")),
        ("tgrpo-bench:cpu", ("tgrpo-bench", "cpu")),
        ("localhost:5000/tgrpo-bench", ("localhost:5000/tgrpo-bench", "latest")),
        ("localhost:5000/tgrpo-bench:gpu", ("localhost:5000/tgrpo-bench", "gpu")),
    ],
)
def test_split_tag(ref, expected):
    assert S.split_tag(ref) == expected


# --- GPU device requests ---------------------------------------------------------------------------------------


def test_gpus_all_is_one_request_for_every_gpu():
    assert S.parse_gpus("all") == [
        {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]


def test_gpus_count_and_device_ids():
    assert S.parse_gpus("2") == [{"Driver": "", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]
    expected = [{"Driver": "", "Count": 0, "DeviceIDs": ["0", "3"], "Capabilities": [["gpu"]], "Options": {}}]
    assert S.parse_gpus("device=0,3") == expected
    assert S.parse_gpus("0, 3") == expected


@pytest.mark.parametrize("value", [None, "", "none", "0"])
def test_no_gpus(value):
    assert S.parse_gpus(value) == []


def test_bad_gpus_value():
    with pytest.raises(ValueError):
        S.parse_gpus("device=")


def test_auto_gpus_follow_the_host():
    assert S.resolve_gpus("auto", host_has_gpu=True) == "all"
    assert S.resolve_gpus("auto", host_has_gpu=False) == "none"
    assert S.resolve_gpus("device=1", host_has_gpu=False) == "device=1"
    assert S.host_variant(True) == "gpu" and S.host_variant(False) == "cpu"


# --- run settings ----------------------------------------------------------------------------------------------


def test_volume_binds(tmp_path):
    binds = S.volume_binds(tmp_path / "r", tmp_path / "d", tmp_path / "c")
    assert binds == {
        str(tmp_path / "r"): {"bind": "/results", "mode": "rw"},
        str(tmp_path / "d"): {"bind": "/datasets", "mode": "ro"},
        str(tmp_path / "c"): {"bind": "/checkpoints", "mode": "rw"},
    }
    assert S.volume_binds(tmp_path / "r") == {str(tmp_path / "r"): {"bind": "/results", "mode": "rw"}}


def test_container_user():
    assert S.container_user(0, 0) is None  # root callers keep the image's non-root user
    assert S.container_user(1234, 100) == "1234:100"


def test_run_kwargs_on_a_gpu_host_as_a_normal_user(tmp_path):
    kwargs = S.run_kwargs(
        image_ref="tgrpo-bench:gpu",
        image_id="sha256:feed",
        command=["eval", "--episodes", "1"],
        binds={"/h/r": {"bind": "/results", "mode": "rw"}},
        gpus="all",
        user="1234:100",
    )
    assert kwargs == {
        "image": "sha256:feed",
        "command": ["eval", "--episodes", "1"],
        "detach": True,
        "environment": {
            "TGRPO_BENCH_IMAGE": "tgrpo-bench:gpu",
            "TGRPO_BENCH_IMAGE_DIGEST": "sha256:feed",
            "HOME": "/tmp",
        },
        "volumes": {"/h/r": {"bind": "/results", "mode": "rw"}},
        "device_requests": [{"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}],
        "shm_size": "2g",
        "init": True,
        "labels": {"io.tgrpo-bench.run": "1"},
        "user": "1234:100",
    }


def test_run_kwargs_on_a_cpu_host_as_root_with_an_entrypoint():
    kwargs = S.run_kwargs("tgrpo-bench:cpu", "sha256:beef", ["-c", "pass"], {}, "none", None, entrypoint=["python"])
    assert kwargs["environment"] == {"TGRPO_BENCH_IMAGE": "tgrpo-bench:cpu", "TGRPO_BENCH_IMAGE_DIGEST": "sha256:beef"}
    assert kwargs["device_requests"] == []
    assert kwargs["entrypoint"] == ["python"]
    assert "user" not in kwargs


# --- torch wheel -----------------------------------------------------------------------------------------------


def test_torch_pin_is_read_from_constraints(tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("# comment\ntorchvision==0.1\ntorch==2.13.0\ntqdm==4\n")
    assert S.torch_pin(constraints) == "2.13.0"
    (tmp_path / "empty.txt").write_text("numpy==1\n")
    with pytest.raises(ValueError):
        S.torch_pin(tmp_path / "empty.txt")


@pytest.mark.parametrize(
    "name, expected",
    [
        (WHEEL, True),
        ("torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl", True),
        ("torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl", False),  # the CUDA build
        ("torch-2.13.0+cpu-cp312-cp312-manylinux_2_28_x86_64.whl", False),
        ("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_aarch64.whl", False),
        ("torch-2.13.1+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", False),
    ],
)
def test_cpu_wheel_names(name, expected):
    assert S.cpu_wheel_name_matches(name, "2.13.0") is expected


def test_find_and_serve_the_cpu_wheel(tmp_path):
    (tmp_path / "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"cuda")
    (tmp_path / WHEEL).write_bytes(b"cpu wheel")
    wheel = find_cpu_wheel("2.13.0", [tmp_path / "missing", tmp_path])
    assert wheel == tmp_path / WHEEL
    assert find_cpu_wheel("2.13.0", [wheel]) == wheel
    assert find_cpu_wheel("9.9.9", [tmp_path]) is None
    with serve_files([wheel], port=0) as url:
        assert url.startswith("http://127.0.0.1:")
        listing = urllib.request.urlopen(url, timeout=10).read().decode()
        # The listing is the find-links page pip reads: only the served wheel, '+' URL-quoted.
        assert "torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl" in listing
        assert "cp311-cp311-manylinux_2_28_x86_64.whl\">torch-2.13.0-cp311" not in listing
        body = urllib.request.urlopen(url + "torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl", timeout=10)
        assert body.read() == b"cpu wheel"


def test_wheel_server_port_is_fixed_so_the_build_cache_holds(tmp_path):
    (tmp_path / WHEEL).write_bytes(b"w")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve_files([tmp_path / WHEEL], port=port) as url:
        assert url == f"http://127.0.0.1:{port}/"
        with serve_files([tmp_path / WHEEL], port=port) as other:  # taken: falls back to a free port
            assert other.startswith("http://127.0.0.1:") and other != url


# --- results check ---------------------------------------------------------------------------------------------


def _write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_results_with_provenance_and_digest(tmp_path):
    rows = [{"success": True, "provenance": {"image": {"digest": "sha256:abc"}, "mujoco": "2.3.7"}}]
    check = S.check_episodes(_write_rows(tmp_path / "episodes.jsonl", rows), "sha256:abc")
    assert check.ok and check.rows == 1 and check.digest_recorded


def test_results_missing_digest_or_provenance(tmp_path):
    path = _write_rows(tmp_path / "episodes.jsonl", [{"provenance": {"mujoco": "2.3.7"}}, {"success": False}])
    check = S.check_episodes(path, "sha256:abc")
    assert not check.ok
    assert check.problems == [
        "line 2: no provenance block",
        f"the image digest sha256:abc ({S.DIGEST_ENV}) is not in any row's provenance",
    ]


def test_results_missing_file(tmp_path):
    check = S.check_episodes(tmp_path / "episodes.jsonl", "sha256:abc")
    assert check.problems == [f"{tmp_path / 'episodes.jsonl'} was not written"]


def _store(tmp_path: Path, methods: list[str], digest: str = "sha256:abc") -> Path:
    report = tmp_path / S.REPRODUCE_REPORT
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"provenance": {}, "rows": [{"method": m} for m in methods]}))
    for sub in ("eval/sft-t0-abc/eval", "rl/tgrpo-t0-abc/run/eval"):
        (tmp_path / sub).mkdir(parents=True)
        _write_rows(tmp_path / sub / "episodes.jsonl", [{"provenance": {"image": {"digest": digest}}}])
    return tmp_path


def test_reproduction_check_passes_a_complete_store(tmp_path):
    check = S.check_reproduction(_store(tmp_path, ["sft", "tgrpo", "grpo"]), "sha256:abc")
    assert check.ok and check.rows == 2 and check.digest_recorded


def test_reproduction_check_names_a_missing_method_and_a_foreign_image(tmp_path):
    check = S.check_reproduction(_store(tmp_path, ["sft", "tgrpo"], digest="sha256:other"), "sha256:abc")
    assert len(check.problems) == 3
    assert "expected sft, tgrpo and grpo" in check.problems[0]
    assert check.problems[1].startswith("eval/sft-t0-abc/eval/episodes.jsonl: the image digest sha256:abc")


def test_reproduction_check_without_a_report(tmp_path):
    assert S.check_reproduction(tmp_path, None).problems == [f"{tmp_path / S.REPRODUCE_REPORT} was not written"]


# --- the Dockerfile's contract ---------------------------------------------------------------------------------


def test_dockerfile_contract():
    text = (S.REPO_ROOT / S.DOCKERFILE).read_text()
    assert "ARG BASE=" in text.split("FROM", 1)[0]
    assert 'ENTRYPOINT ["tgrpo-bench"]' in text
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics" in text
    assert "/usr/share/glvnd/egl_vendor.d/10_nvidia.json" in text
    assert "MUJOCO_GL=egl" in text
    assert 'VOLUME ["/results", "/datasets", "/checkpoints"]' in text
    assert "-c constraints.txt" in text
    assert "# syntax=" not in text  # no frontend image to pull
    vendor = json.loads((S.REPO_ROOT / "docker" / "10_nvidia.json").read_text())
    assert vendor["ICD"]["library_path"] == "libEGL_nvidia.so.0"


# --- in the image ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    from bench.container.engine import connect

    client = connect(timeout=3600)
    if client is None:
        pytest.skip("no Docker engine answers (start one with `python -m bench.container engine start`)")
    yield client
    client.close()


@pytest.mark.docker
@pytest.mark.slow
def test_smoke_in_the_cpu_image(engine, tmp_path):
    from bench.container import driver

    code = driver.smoke(engine, "cpu", base="auto", gpus="none", results_root=tmp_path)
    report = json.loads((tmp_path / "cpu" / "smoke-report.json").read_text())
    assert code == 0, report
    assert report["egl_probe"]["torch"].endswith("+cpu")
    assert report["results"]["rows"] == 1 and report["results"]["digest_recorded"]
