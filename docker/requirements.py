"""Print the project's runtime dependencies from pyproject.toml, one requirement a line.

Used by docker/Dockerfile to install the pinned dependency stack (`pip install -c constraints.txt -r ...`)
in a layer that only depends on pyproject.toml and constraints.txt, before the project source is copied.
"""

from __future__ import annotations

import sys
import tomllib


def main(path: str = "pyproject.toml") -> int:
    with open(path, "rb") as stream:
        project = tomllib.load(stream)["project"]
    for requirement in project.get("dependencies", []):
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
