"""Find the supported Pythons on this machine and keep one benchmark venv for each.

``python3.X`` on the PATH, then ``~/.pyenv/versions/3.X*/bin/``; each candidate is run
once for its real version (a pyenv shim not selected fails and is skipped). A venv in
``bench/results/venvs/3.X`` is reused while its stamp (interpreter, hash of the
requirements files) matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from klines.testing.servers import ROOT

SUPPORTED = ((3, 11), (3, 12), (3, 13))  # as pyproject's requires-python and scripts/bootstrap
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt")
STAMP = ".binancews-requirements.json"
_PROBE = (
    "import json, platform, sys; print(json.dumps([sys.version_info[:2], platform.python_version(), sys.executable]))"
)


@dataclass(frozen=True)
class Interpreter:
    minor: tuple[int, int]  # (3, 12)
    version: str  # "3.12.1"
    executable: str  # the real binary (not a shim)

    @property
    def name(self) -> str:
        return f"{self.minor[0]}.{self.minor[1]}"


def candidates(minor: tuple[int, int], *, path: str, home: Path) -> list[str]:
    """Where ``python3.X`` may be, in order: the PATH, then pyenv's versions (newest patch first)."""
    name = f"python{minor[0]}.{minor[1]}"
    found = [str(Path(d) / name) for d in path.split(os.pathsep) if d and (Path(d) / name).is_file()]
    pyenv = sorted(
        (home / ".pyenv" / "versions").glob(f"{minor[0]}.{minor[1]}*/bin/{name}"),
        key=lambda p: tuple(int(x) if x.isdigit() else -1 for x in p.parts[-3].split(".")),
        reverse=True,
    )
    return found + [str(p) for p in pyenv if str(p) not in found]


def probe(executable: str) -> Interpreter | None:
    """Run ``executable`` once; its version and real path, or None if it does not run."""
    try:
        done = subprocess.run([executable, "-c", _PROBE], capture_output=True, text=True, timeout=30)
        minor, version, real = json.loads(done.stdout) if done.returncode == 0 else (None, "", "")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return Interpreter(tuple(minor), version, real) if minor else None


def find(minor: tuple[int, int]) -> Interpreter | None:
    """The first working interpreter of version ``minor``, or None."""
    for executable in candidates(minor, path=os.environ.get("PATH", ""), home=Path.home()):
        found = probe(executable)
        if found is not None and found.minor == minor:
            return found
    return None


def requirements_key(root: Path = ROOT) -> str:
    """A hash of the pinned requirements: a venv built from other pins is refreshed."""
    digest = hashlib.sha256()
    for name in REQUIREMENTS:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Venv:
    python: Path  # <venv>/bin/python, or the running interpreter itself
    installed: str  # "reused", "created" or "refreshed"
    seconds: float  # spent creating or refreshing it


def ensure_venv(interpreter: Interpreter, venvs: Path, progress: Callable[[str], None]) -> Venv:
    """A venv of ``interpreter`` with requirements-dev.txt; created, refreshed or reused by its stamp."""
    here = sys.version_info[:2] == interpreter.minor and sys.prefix != sys.base_prefix
    if here:  # the running venv (bootstrap's .venv) already has the pins
        return Venv(Path(sys.executable), "reused", 0.0)
    began = time.monotonic()
    target = venvs / interpreter.name
    stamp_path = target / STAMP
    key, python = requirements_key(), target / "bin" / "python"
    stamp = json.loads(stamp_path.read_text()) if stamp_path.is_file() else {}
    if stamp.get("interpreter") != interpreter.executable or not python.exists():
        progress(f"Python {interpreter.version}: creating {target} and installing requirements-dev.txt")
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([interpreter.executable, "-m", "venv", str(target)], check=True, timeout=300)
        installed = "created"
    elif stamp.get("requirements") != key:
        progress(f"Python {interpreter.version}: requirements changed, refreshing {target}")
        installed = "refreshed"
    else:
        return Venv(python, "reused", 0.0)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, "-r", str(ROOT / "requirements-dev.txt")], capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install into {target} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    stamp_path.write_text(json.dumps({"interpreter": interpreter.executable, "requirements": key}) + "\n")
    return Venv(python, installed, time.monotonic() - began)
