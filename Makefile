# tgrpo-bench: `make setup` then `make test`. See README.md.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# Rendering: robosuite 1.4 forces EGL unless MUJOCO_GL is exactly osmesa or glx (docs/protocol.md, "Rendering").
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
# EGL (Mesa llvmpipe on CPU machines) for the simulator's offscreen renderer.
APT_PACKAGES := libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libgles2 libglvnd0

.PHONY: setup apt venv test test-slow test-ray test-kernels bench lint lock clean docker docker-smoke docker-ci fixture-tables \
	reproduce check

setup: apt venv

apt:
	@if ldconfig -p | grep -q libEGL_mesa.so.0 && ldconfig -p | grep -q 'libGL.so.1 '; then \
	  echo "EGL libraries present"; \
	else \
	  echo "installing EGL libraries: $(APT_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	fi

venv:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[test,ray]'

test: lint
	$(VENV)/bin/hadolint --failure-threshold error docker/Dockerfile
	$(VENV)/bin/pytest -m "not slow and not gpu and not docker and not ray" -q

# Triton kernels under Triton's CPU interpreter, in a process that never imports robosuite (see pyproject.toml).
test-kernels:
	$(PIP) install -q -c constraints.txt --target .kernels-site triton
	PYTHONPATH=.kernels-site $(VENV)/bin/pytest -q tests/tgrpo/test_kernels.py tests/tgrpo/test_kernels_compile.py

test-slow:
	$(VENV)/bin/pytest -m "slow" -q

# The Ray executor against a real two-node Ray cluster on 127.0.0.1 (docs/scale-out.md): local and Ray results equal,
# a worker node killed mid-run loses nothing.
test-ray:
	$(VENV)/bin/pytest -m ray -q tests/bench/test_reproduce_ray.py

# Result regressions (docs/regression.md): rerun the regression set, compare with expected_results/regression/.
# Exit 1 with a diff on a mismatch. Re-record (clean tree only) with `$(VENV)/bin/tgrpo-bench record`.
check:
	$(VENV)/bin/tgrpo-bench check

# The reproduction pipeline (docs/reproduce.md): make reproduce SUITE=long [PROFILE=smoke|small] [METHODS=tgrpo,grpo]
# [TASKS=0,3|auto[:N]] [SEEDS=0,1] [SETTINGS="a1=0.1,a2=0.9;a1=0.5,a2=0.5"] [STORE=results/reproduce] [REPORT=name] [DRY_RUN=1]
# [REPORT_ONLY=1] [JOBS=2] [EXECUTOR=ray [ADDRESS=host:port]]. Rerunning skips finished stages and resumes a killed one;
# REPORT_ONLY=1 runs nothing and reports the stages finished so far. SETTINGS: RL config
# overrides, one RL stage per ';'-separated setting (a sweep). EXECUTOR=ray: stages as Ray tasks on a cluster
# (docs/scale-out.md).
SUITE ?=
PROFILE ?= smoke
reproduce:
	@test -n "$(SUITE)" || { echo "make reproduce: give SUITE=spatial|object|goal|long" >&2; exit 2; }
	$(VENV)/bin/tgrpo-bench reproduce --suite $(SUITE) --profile $(PROFILE) $(if $(METHODS),--methods $(METHODS)) \
	  $(if $(STORE),--store $(STORE)) $(if $(REPORT),--report $(REPORT)) \
	  $(if $(TASKS),--tasks $(TASKS)) $(if $(SEEDS),--seeds $(SEEDS)) \
	  $(foreach s,$(subst ;, ,$(SETTINGS)),--setting $(s)) $(if $(DRY_RUN),--dry-run) $(if $(REPORT_ONLY),--report-only) \
	  $(if $(EXECUTOR),--executor $(EXECUTOR)) $(if $(ADDRESS),--address $(ADDRESS)) $(if $(JOBS),--jobs $(JOBS))

# Speed targets are benchmarks, never timed tests; reports land in results/bench/ (copy figures into docs/).
bench:
	$(VENV)/bin/tgrpo-bench profile --out results/bench/kernels
	$(PY) -m bench.benchmarks.rollout_overhead --out results/bench/rollout
	$(PY) -m bench.benchmarks.policy_inference --out results/bench/policy
	$(PY) -m bench.benchmarks.demo_generation --out results/bench/demos

# Container: build the CPU image (local Debian base here), then run a 1-episode eval inside it.
docker:
	$(PY) -m bench.container build

docker-smoke:
	$(PY) -m bench.container smoke

# What CI runs after the tests: engine started and stopped here, CPU image + smoke, GPU variant on the local base.
docker-ci:
	$(PY) -m bench.container ci

lint:
	$(VENV)/bin/ruff check tgrpo bench baselines tests

# Per-episode fixture placements of OpenVLA's sequential run (committed; about 35 min per suite on one core).
# Existing tables are kept; delete one to regenerate it after a simulator upgrade.
fixture-tables:
	for suite in libero_spatial libero_object libero_goal libero_10; do $(PY) -m bench.fixture_tables --suite $$suite || exit 1; done

# Regenerate the single pin file after changing pyproject.toml's dependencies.
lock:
	{ echo "# The whole pinned stack (Python 3.11, x86_64). Regenerate with 'make lock' after changing pyproject.toml."; \
	  echo "# torch: the CPU wheel is 2.13.0+cpu; the pin omits the local label so a CUDA 2.13.0 build also satisfies it."; \
	  $(PIP) freeze --exclude-editable | grep -v '^tgrpo-bench' | sed 's/^torch==2.13.0+cpu/torch==2.13.0/'; } > constraints.txt

clean:
	rm -rf .pytest_cache .benchmarks build *.egg-info
