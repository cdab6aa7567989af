"""``python -m bench.container``: build|smoke|run|base|engine|ci. See docs/container.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.container import spec as S


def _add_build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", choices=("auto", *S.VARIANTS), default="auto",
                        help="cpu (Mesa EGL, torch +cpu) or gpu (CUDA torch, EGL through NVIDIA); auto: this host's")
    parser.add_argument("--base", default="auto",
                        help="auto (official base if pullable, else the local bootstrapped one), local, "
                             "or an image ref")
    parser.add_argument("--tag", action="append", dest="tags", metavar="REF",
                        help="image tag (repeatable); default tgrpo-bench:VARIANT, plus :latest for this "
                             "host's variant")
    parser.add_argument("--torch-wheel", type=Path, metavar="PATH",
                        help="torch +cpu wheel (file or directory) to serve to the build; default: pip's find-links")
    parser.add_argument("--torch-index-url", metavar="URL", help="install torch from this index instead")


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-engine", action="store_true", help="leave a dockerd this command started running")
    parser.add_argument("--no-start-engine", action="store_true", help="fail instead of starting dockerd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.container", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("build", help="build the image (make docker)")
    _add_build_options(p)
    _add_engine_options(p)

    p = sub.add_parser("smoke", help="build, then run --help, an EGL probe and a 1-episode eval in the image")
    _add_build_options(p)
    _add_engine_options(p)
    p.add_argument("--skip-build", action="store_true", help="use the existing tgrpo-bench:VARIANT image")
    p.add_argument("--gpus", default="auto", help="auto, none, all, N or device=0,1 (docker's --gpus)")
    p.add_argument("--results", type=Path, default=None,
                   help="host directory for /results (default results/container-smoke)")

    p = sub.add_parser("run", help="run `tgrpo-bench ARGS...` in the image with the volumes mounted")
    _add_engine_options(p)
    p.add_argument("--image", default=f"{S.IMAGE_REPO}:latest")
    p.add_argument("--gpus", default="auto", help="auto, none, all, N or device=0,1 (docker's --gpus)")
    p.add_argument("--results", type=Path, default=Path("results"), help="host directory mounted at /results")
    p.add_argument("--datasets", type=Path, help="host directory mounted read-only at /datasets")
    p.add_argument("--checkpoints", type=Path, help="host directory mounted at /checkpoints")
    p.add_argument("args", nargs=argparse.REMAINDER, help="tgrpo-bench arguments (after --)")

    p = sub.add_parser("base", help="bootstrap the local Debian base (mmdebstrap + import)")
    p.add_argument("--force", action="store_true", help="rebuild even if it exists")
    _add_engine_options(p)

    p = sub.add_parser("engine", help="start or stop a dockerd by hand (docker/engine.sh)")
    p.add_argument("action", choices=("start", "stop", "status"))

    p = sub.add_parser("ci", help="the container check of .ci/run (skips when no engine can be started)")
    p.add_argument("--no-gpu-variant", action="store_true", help="skip building the GPU variant on the local base")
    p.add_argument("--require", action="store_true", help="fail instead of skipping without an engine")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bench.container import driver
    from bench.container.engine import EngineUnavailable, engine_script, engine_session, host_has_gpu

    if args.verb == "engine":
        result = engine_script(args.action)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.returncode
    if args.verb == "ci":
        return driver.ci(gpu_variant=not args.no_gpu_variant, require=args.require or None)
    try:
        with engine_session(start=not args.no_start_engine, keep=args.keep_engine) as client:
            if args.verb == "base":
                driver.bootstrap_local_base(client, force=args.force)
                return 0
            if args.verb == "run":
                command = args.args[1:] if args.args[:1] == ["--"] else args.args
                code, _ = driver.run_in_image(client, args.image, command, results=args.results,
                                              datasets=args.datasets, checkpoints=args.checkpoints, gpus=args.gpus)
                return code
            variant = args.variant
            if variant == "auto":
                variant = S.host_variant(host_has_gpu(client))
            options = {"tags": args.tags, "torch_wheel": args.torch_wheel, "torch_index_url": args.torch_index_url}
            if args.verb == "build":
                driver.build(client, variant, base=args.base, **options)
                return 0
            results_root = args.results or driver.SMOKE_ROOT
            return driver.smoke(client, variant, base=args.base, skip_build=args.skip_build, gpus=args.gpus,
                                results_root=results_root, **options)
    except EngineUnavailable as err:
        print(f"bench.container: no Docker engine: {err}", file=sys.stderr)
        return 3
    except driver.BuildFailed as err:
        print(f"bench.container: build failed: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
