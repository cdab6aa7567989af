"""The installed package (as the container installs it: a wheel, not editable) carries its data files."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_committed_data_files(tmp_path):
    src = tmp_path / "src"  # a clean copy: a stale build/ in the checkout would hide a missing package-data entry
    for name in ("tgrpo", "baselines", "bench"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("tgrpo_bench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for pattern in ("tgrpo/rewards/specs/*.json", "tgrpo/envs/fixture_poses/*/*.json"):
        committed = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern))
        assert committed and [n for n in committed if n not in names] == [], pattern
