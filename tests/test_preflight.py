"""scripts/preflight on a machine without the test packages and without root: one apt-get line, at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

PREFLIGHT = Path(__file__).resolve().parent.parent / "scripts" / "preflight"


def as_nobody() -> list[str]:
    """Run as the unprivileged user ``nobody`` when we are root; a non-root user is unprivileged already."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux) to drop privileges")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def test_missing_packages_without_root_stop_with_the_apt_get_line(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"  # no redis-server, chromium, chromedriver, sudo or apt-get
    empty_bin.mkdir()
    empty_bin.chmod(0o755)
    tmp_path.chmod(0o755)
    started = time.monotonic()
    result = subprocess.run(
        [*as_nobody(), "/bin/bash", str(PREFLIGHT), "test"],
        env={"PATH": str(empty_bin), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode != 0
    assert time.monotonic() - started < 5
    assert "run: sudo apt-get install -y redis-server chromium chromium-driver" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line
