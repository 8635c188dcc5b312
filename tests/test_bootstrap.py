"""scripts/bootstrap takes any Python 3.11-3.13 and refuses others with one clear line.

Each test runs the real script in a copy of ``scripts/`` with an empty
requirements file, so a venv is made with the real interpreter but nothing is
downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench import interpreters

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
REFUSED = "binancews needs Python 3.11-3.13"

pytestmark = pytest.mark.e2e


def project(tmp_path: Path) -> Path:
    """A copy of the scripts bootstrap needs, beside an empty requirements.txt."""
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    for name in ("bootstrap", "preflight"):
        shutil.copy2(SCRIPTS / name, root / "scripts" / name)
    (root / "requirements.txt").write_text("")
    return root


def bootstrap(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/bash", str(root / "scripts" / "bootstrap")], env=env, capture_output=True, text=True, timeout=180
    )


def interpreter(minor: tuple[int, int]) -> interpreters.Interpreter:
    found = interpreters.find(minor)
    if found is None:
        pytest.skip(f"no python{minor[0]}.{minor[1]} on PATH or under ~/.pyenv/versions")
    return found


@pytest.mark.parametrize("minor", [(3, 12), (3, 13)])
def test_python_picks_a_newer_supported_interpreter(tmp_path: Path, minor: tuple[int, int]) -> None:
    python = interpreter(minor)
    root = project(tmp_path)
    done = bootstrap(root, {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": python.executable})
    assert done.returncode == 0, done.stderr
    made = interpreters.probe(str(root / ".venv" / "bin" / "python"))
    assert made is not None
    assert made.version == python.version


def test_an_older_python_is_refused_in_one_line(tmp_path: Path) -> None:
    python = interpreter((3, 10))
    root = project(tmp_path)
    done = bootstrap(root, {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": python.executable})
    assert done.returncode == 1
    assert done.stderr.startswith(f"{REFUSED} (found: Python {python.version});")
    assert done.stderr.count("\n") == 1, done.stderr
    assert not (root / ".venv").exists()


def test_a_newer_python_is_refused_in_one_line(tmp_path: Path) -> None:
    # No Python 3.14 is installed here: a stand-in answers as one would (its version check fails).
    fake = tmp_path / "python3.14"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.14.0" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    root = project(tmp_path)
    done = bootstrap(root, {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": str(fake)})
    assert done.returncode == 1
    assert done.stderr.startswith(f"{REFUSED} (found: Python 3.14.0);")
    assert done.stderr.count("\n") == 1, done.stderr


def test_no_supported_python_on_the_path_is_refused_in_one_line(tmp_path: Path) -> None:
    python = interpreter((3, 10))
    bin_dir = tmp_path / "bin"  # only python3 (3.10) and the tools bootstrap uses before it gives up
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(python.executable)
    for tool in ("dirname",):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    root = project(tmp_path)
    done = bootstrap(root, {"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.startswith(f"{REFUSED} (found: Python {python.version});")
    assert done.stderr.count("\n") == 1, done.stderr


def test_python_naming_another_version_than_the_existing_venv_is_refused(tmp_path: Path) -> None:
    first, second = interpreter((3, 12)), interpreter((3, 13))
    root = project(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    assert bootstrap(root, {**env, "PYTHON": first.executable}).returncode == 0
    done = bootstrap(root, {**env, "PYTHON": second.executable})
    assert done.returncode == 1
    assert done.stderr == f"binancews: .venv is Python 3.12, not PYTHON={second.executable}; rm -rf .venv to switch\n"
    assert bootstrap(root, {**env, "PYTHON": first.executable}).returncode == 0  # the same version: kept
