"""What code a study runs: a hash of its module's source and of every symlab module it imports.

A job's result depends on the code that computed it as much as on its params. The fingerprint
of a study is the SHA-256 of the sources of its own module and of the ``symlab`` modules it
imports, directly or through each other (found by reading ``import`` statements, including those
inside functions, so lazy imports count). The run directory records the fingerprint and the hash
of each module; a resume under other code is refused with the names of the modules that changed
(:func:`changed_modules`), unless the caller asks for the new code's jobs to be computed beside
the old rows. Editing the CLI, the engine (which stores results but does not compute them), a
benchmark or another study does not change a study's fingerprint. Files are read, never imported.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CodeFingerprint:
    """``digest``: 12 hex digits over all modules; ``modules``: module name -> source hash."""

    digest: str
    modules: dict[str, str]


SYMLAB_ROOT = Path(__file__).resolve().parents[1]
# the engine and the CLI store and show results; they do not compute them
NOT_RESULT_CODE = ("symlab.engine", "symlab.cli")


def _origin(name: str) -> Path | None:
    """The source file of module ``name``, found without importing anything."""
    if name == "symlab" or name.startswith("symlab."):
        base = SYMLAB_ROOT.joinpath(*name.split(".")[1:])
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None)
    return Path(origin) if origin and origin.endswith(".py") else None


@functools.lru_cache(maxsize=512)
def _source_and_imports(path: Path, version: tuple[int, int]) -> tuple[str, tuple[str, ...]]:
    """(sha256 of the file, the symlab module names it may import); cached per file version
    (modification time in ns, size)."""
    data = path.read_bytes()
    names = []
    for node in ast.walk(ast.parse(data)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    wanted = tuple(
        n
        for n in names
        if (n == "symlab" or n.startswith("symlab."))
        and not any(n == p or n.startswith(p + ".") for p in NOT_RESULT_CODE)
    )
    return hashlib.sha256(data).hexdigest(), wanted


def code_fingerprint(module: str) -> CodeFingerprint:
    """The fingerprint of ``module`` (a study's module name) and the symlab modules it reaches."""
    hashes: dict[str, str] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in hashes:
            continue
        path = _origin(name)
        if path is None:  # an attribute, not a module (``from symlab.x import function``)
            continue
        stat = path.stat()
        digest, imports = _source_and_imports(path, (stat.st_mtime_ns, stat.st_size))
        hashes[name] = digest
        todo += [n for n in imports if n not in hashes]
    text = "\n".join(f"{name} {digest}" for name, digest in sorted(hashes.items()))
    return CodeFingerprint(hashlib.sha256(text.encode()).hexdigest()[:12], hashes)


def changed_modules(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Modules edited, added or removed between two fingerprints' module tables, sorted."""
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
