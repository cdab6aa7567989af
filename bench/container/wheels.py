"""Serve the host's torch CPU wheel on 127.0.0.1 for the duration of a build.

The CPU image installs torch with ``--no-index --find-links http://127.0.0.1:PORT/`` (build with the host's
network), so it gets the +cpu wheel and can never fall back to the multi-GB CUDA build.
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.container.spec import cpu_wheel_name_matches

DEFAULT_PORT = 37311


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


def pip_find_links_dirs() -> list[Path]:
    """Local directories pip on this host searches with find-links (PIP_FIND_LINKS and pip's config)."""
    entries: list[str] = []
    entries += shlex.split(os.environ.get("PIP_FIND_LINKS", ""))
    try:
        listing = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        listing = ""
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".find-links"):
            entries += shlex.split(value.strip().strip("'\""))
    dirs: list[Path] = []
    for entry in entries:
        path = Path(entry.removeprefix("file://"))
        if path.is_dir() and path not in dirs:
            dirs.append(path)
    return dirs


def find_cpu_wheel(version: str, search: Iterable[Path]) -> Path | None:
    """The first torch ``version`` +cpu wheel (cp311, x86_64 Linux) in ``search`` (files or directories)."""
    for place in search:
        place = Path(place)
        candidates = [place] if place.is_file() else sorted(place.glob("torch-*.whl")) if place.is_dir() else []
        for candidate in candidates:
            if cpu_wheel_name_matches(candidate.name, version):
                return candidate
    return None


def _bind(handler, port: int) -> ThreadingHTTPServer:
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        if port == 0:
            raise
        print(f"wheel server: 127.0.0.1:{port} is taken; using another port (the torch layer will not be cached)",
              file=sys.stderr)
        return ThreadingHTTPServer(("127.0.0.1", 0), handler)


@contextmanager
def serve_files(files: Iterable[Path], port: int | None = None) -> Iterator[str]:
    """Serve just ``files`` (directory listing = a find-links page) on 127.0.0.1; yields the URL.

    The URL is a build argument, so it is part of the build cache key: a fixed port (default
    ``TGRPO_WHEEL_PORT`` or 37311) keeps the torch layer cached across builds; ``port=0`` picks a free one.
    """
    if port is None:
        port = int(os.environ.get("TGRPO_WHEEL_PORT", DEFAULT_PORT))
    with tempfile.TemporaryDirectory(prefix="tgrpo-wheels-") as tmp:
        for file in files:
            os.symlink(Path(file).resolve(), Path(tmp) / Path(file).name)
        handler = functools.partial(_QuietHandler, directory=tmp)
        server = _bind(handler, port)
        thread = threading.Thread(target=server.serve_forever, name="wheel-server", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
