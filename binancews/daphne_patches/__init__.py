"""Every change binancews makes to daphne, autobahn and twisted internals, applied by one call: :func:`apply`.

One module per patch; each names the exact versions it was written against
(``REQUIRES``) and the upstream functions it copies, wraps or reads the fields
of (``UPSTREAM``, checked by tests/test_daphne_patches.py). ``binancews/asgi.py``
calls :func:`apply` once, where daphne's application is built. A patch whose
versions are not the installed ones is left off with one logged line, and the
service runs unpatched in that respect; a patch is installed whole or not at
all, and each is independent of the others. docs/daphne-upstream-patch.md is
the way to retire :mod:`~binancews.daphne_patches.reaping` upstream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from binancews.daphne_patches import backpressure, close, inbox, prepared, reaping, tuning
from binancews.daphne_patches.upstream import installed_version, mismatches

logger = logging.getLogger(__name__)

# In this order: reaping wraps whatever create_application is, so the inbox's must be in place first.
PATCHES = (tuning, close, inbox, reaping, backpressure, prepared)


def patch_name(patch: object) -> str:
    return patch.__name__.rpartition(".")[2]  # type: ignore[attr-defined]


def apply(version_of: Callable[[str], str | None] = installed_version) -> dict[str, bool]:
    """Install each patch whose required versions are installed; return patch name -> installed."""
    applied = {}
    for patch in PATCHES:
        wrong = mismatches(patch.REQUIRES, version_of)
        if wrong:
            logger.warning(
                "daphne patch %s is off, running unpatched: written for %s, installed %s (%s)",
                patch_name(patch),
                ", ".join(f"{name} {patch.REQUIRES[name]}" for name in wrong),
                ", ".join(f"{name} {version or 'missing'}" for name, version in wrong.items()),
                patch.WITHOUT,
            )
            applied[patch_name(patch)] = False
        else:
            applied[patch_name(patch)] = patch.install()
    return applied
