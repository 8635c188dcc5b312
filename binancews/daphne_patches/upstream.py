"""What a patch relies on upstream: the exact versions it was written against, and the code it copies or wraps.

A patch names its requirements (``REQUIRES``: distribution -> version) and the
upstream functions whose behaviour it assumes (``UPSTREAM``: ``module:Qualname``
-> a digest of that function's source). :func:`mismatches` is the run-time
guard; :func:`source_digest` is what the tests compare, so an upgrade that
changes the code under a patch fails them before it reaches production.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Callable, Mapping


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or ``None`` if it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def mismatches(
    requires: Mapping[str, str], version_of: Callable[[str], str | None] = installed_version
) -> dict[str, str | None]:
    """Distribution -> installed version, for each one in ``requires`` not at the version it names."""
    installed = {name: version_of(name) for name in requires}
    return {name: version for name, version in installed.items() if version != requires[name]}


def source_digest(target: str) -> str:
    """The first 16 hex digits of the SHA-256 of ``module:Qualname``'s source, read from the module's file.

    Read with :mod:`ast` rather than :func:`inspect.getsource`, so a patch already installed in this
    process does not hide the upstream code.
    """
    module, _, qualname = target.partition(":")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise LookupError(f"{module}: not installed")
    with open(spec.origin, encoding="utf-8") as file:
        source = file.read()
    node: ast.AST = ast.parse(source)
    for name in qualname.split("."):
        node = next(
            (
                child
                for child in ast.iter_child_nodes(node)
                if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and child.name == name
            ),
            None,
        )
        if node is None:
            raise LookupError(f"{target}: no such function or class")
    segment = ast.get_source_segment(source, node) or ""
    return hashlib.sha256(segment.encode()).hexdigest()[:16]
