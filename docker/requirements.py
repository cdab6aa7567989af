"""Print the project's runtime dependencies from pyproject.toml, one requirement a line, and those of the optional
extras named after it (comma-separated, e.g. `ray`).

Used by docker/Dockerfile to install the pinned dependency stack (`pip install -c constraints.txt -r ...`)
in a layer that only depends on pyproject.toml and constraints.txt, before the project source is copied.
"""

from __future__ import annotations

import sys
import tomllib


def main(path: str = "pyproject.toml", extras: str = "") -> int:
    with open(path, "rb") as stream:
        project = tomllib.load(stream)["project"]
    optional = project.get("optional-dependencies", {})
    for requirement in project.get("dependencies", []):
        print(requirement)
    for extra in filter(None, extras.split(",")):
        if extra not in optional:
            print(f"requirements.py: no extra {extra!r} in {path} (has: {', '.join(optional)})", file=sys.stderr)
            return 2
        for requirement in optional[extra]:
            print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
