"""The browser tests' shared part: skip (or fail under CI) without Chromium, a daphne site to browse, screenshots."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from klines.testing.browser import INSTALL, find_chromium
from klines.testing.servers import ROOT, SecantusServer, daphne, free_port, manage, service_env

ARTIFACTS = ROOT / "test-artifacts"


def chromium_paths() -> tuple[str, str]:
    """The browser and driver binaries; skip (fail in CI) when they are not installed."""
    found = find_chromium()
    if found is not None:
        return found
    reason = f"headless Chromium not installed ({INSTALL})"
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):  # CI=false is a local run
        pytest.fail(f"{reason}: CI must install it")
    pytest.skip(reason)


@dataclass
class Site:
    url: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen


def run_manage(args: list[str], env: Mapping[str, str]) -> str:
    process = manage(args, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, f"manage.py {' '.join(args)} failed:\n{output}"
    return output


def site_env(secantus: SecantusServer, database: str) -> dict[str, str]:
    return service_env(
        secantus.uri,
        database,
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="browser-tests-only",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        KLINE_TIMEZONE="UTC",
    )


def start_site(env: dict[str, str], log: Path, *, port: int | None = None) -> Site:
    port = port or free_port()
    return Site(f"http://127.0.0.1:{port}", port, env, log, daphne(port, env, log))


def save_screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path
