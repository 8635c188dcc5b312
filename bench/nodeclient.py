"""A second connect-storm client, not written for this project: Node's ``ws`` package.

``bench/node/`` pins ws's exact version (package.json and package-lock.json);
the first use installs it with ``npm ci`` into the git-ignored
``bench/node/node_modules``. ``bench/node/storm.mjs`` runs the same storm as
:func:`bench.load.storm` (N clients, K in flight, each connects, reads the
frames, closes) and prints its latencies as one JSON line. Without node or
npm, :func:`unavailable` says why in one line and the client is not measured.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import subprocess
from pathlib import Path

from bench.load import StormResult

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "storm.mjs"


def pinned_version() -> str:
    return json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["ws"]


def installed_version() -> str | None:
    installed = NODE_DIR / "node_modules" / "ws" / "package.json"
    return json.loads(installed.read_text())["version"] if installed.exists() else None


def unavailable() -> str | None:
    """``None`` when Node's ws client is ready (installing it on first use); otherwise why, in one line."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node or npm not found (e.g. apt-get install nodejs npm): Node's ws client not measured"
    if installed_version() != pinned_version():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0 or installed_version() != pinned_version():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"npm ci in bench/node failed ({last[0]}): Node's ws client not measured"
    return None


async def storm(
    port: int, *, connections: int, concurrency: int, path: str = "/", frames: int = 5, time_limit: float = 30.0
) -> tuple[StormResult, float]:
    """The storm through Node's ws; return its result and the node process's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        f"--url=ws://127.0.0.1:{port}{path}",
        f"--connections={connections}",
        f"--concurrency={concurrency}",
        f"--frames={frames}",
        f"--timeout={time_limit:g}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode != 0:
        raise RuntimeError(f"node storm.mjs exited with {process.returncode}: {err.decode()[-300:]}")
    data = json.loads(out)
    result = StormResult(
        latencies=[ms / 1000 for ms in data["latencies_ms"]],
        errors=data["errors"],
        first_error=data["first_error"],
        wall=data["wall_s"],
        frames=[frame.encode() for frame in data["frames"]],
    )
    return result, cpu
