"""`make install` prints no warning box: the editable install of this repo, as pip builds it.

Real: the venv's own pip (the one `make install` upgrades and uses) installs the project, editable and
without dependencies, into a fresh, empty virtual environment, through setuptools in pip's isolated
build environment, exactly as `pip install -e .` does.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from tests.conftest import ROOT


def test_editable_install_prints_no_setuptools_warning(tmp_path: Path) -> None:
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install", "--quiet",
         "--no-deps", "--editable", str(ROOT)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    # setuptools' meta-path-finder strategy ends with "Editable installation ... Please be careful with
    # folders in your working directory"; the package-dir of pyproject.toml selects the plain .pth instead
    assert "Editable installation" not in out and "Please be careful" not in out, out
    assert "Warning" not in out, out
    [pth] = (target / "lib").glob("python3*/site-packages/__editable__.leadgen-*.pth")
    assert pth.read_text(encoding="utf-8").split() == [str(ROOT)]
    # and the installed packages are found from outside the repository (not imported: no dependencies here)
    find = (
        "import importlib.util as u; print(u.find_spec('leadgen_core').origin, u.find_spec('leadgen_dagster').origin)"
    )
    imported = subprocess.run(  # noqa: S603
        [str(target / "bin" / "python"), "-c", find],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert imported.returncode == 0 and imported.stdout.split() == [
        str(ROOT / p / "__init__.py") for p in ("leadgen_core", "leadgen_dagster")
    ], imported.stderr
