"""Real read-only media and a real full disk for the bad-input and read-only-store tests.

As a normal user ``chmod -R a-w`` makes a folder read-only. Root writes through any mode bits,
so as root the folder is bind-mounted read-only (``mount -o remount,bind,ro``) in a private
mount namespace (``unshare -m``) around the command; a full disk is a 64 KiB tmpfs filled up,
mounted the same way. Without either (root without ``unshare``), ``RLIMIT_FSIZE`` in the child
stands for a full disk (writes fail with EFBIG) and the read-only cases are skipped with the
reason.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shlex
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ENGINE_TESTS = Path(__file__).resolve().parent / "engine"
REPO = Path(__file__).resolve().parent.parent


def _can_unshare_mounts() -> bool:
    try:
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


IS_ROOT = os.geteuid() == 0
MOUNTS = IS_ROOT and _can_unshare_mounts()
READ_ONLY = "mount" if MOUNTS else ("chmod" if not IS_ROOT else None)
NO_READ_ONLY = "running as root without unshare -m: no real read-only mechanism available"


def toy_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    parts = [str(ENGINE_TESTS), str(REPO), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    env["SYMLAB_EXPERIMENTS"] = "toy_study"
    env.update(extra)
    return env


def symlab_command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "symlab.cli", *argv]


@contextmanager
def chmod_read_only(folder: Path):
    """``chmod -R a-w folder`` for the duration (modes restored after)."""
    paths = [folder, *folder.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    for p in paths:
        p.chmod(modes[p] & ~0o222)
    try:
        yield
    finally:
        for p in reversed(paths):
            p.chmod(modes[p])


def run_read_only(folder: Path, commands: list[list[str]], cwd: Path) -> list[tuple]:
    """Run each command with ``folder`` read-only (the module docstring): (code, out, err)."""
    if READ_ONLY is None:
        raise RuntimeError(NO_READ_ONLY)
    if READ_ONLY == "chmod":
        with chmod_read_only(folder):
            done = [
                subprocess.run(c, cwd=cwd, env=toy_env(), capture_output=True, text=True)
                for c in commands
            ]
        return [(d.returncode, d.stdout, d.stderr) for d in done]
    target = shlex.quote(str(folder))
    mount = f"mount --bind {target} {target} && mount -o remount,bind,ro {target} {target}"
    here = shlex.quote(str(cwd))
    results = []
    for command in commands:
        done = subprocess.run(
            # cd again: a cwd inside the folder must see the read-only mount, not what is below
            ["unshare", "-m", "sh", "-c", f"{mount} && cd {here} && exec {shlex.join(command)}"],
            cwd=cwd, env=toy_env(), capture_output=True, text=True,
        )  # fmt: skip
        results.append((done.returncode, done.stdout, done.stderr))
    return results


def _ignore_xfsz_and_limit() -> None:  # pragma: no cover - runs in the child
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))


def run_on_full_disk(folder: Path, command: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``command`` with ``folder`` on a full file system (a filled tmpfs as root, else a
    512-byte file size limit)."""
    if MOUNTS:
        target = shlex.quote(str(folder))
        script = (
            f"mount -t tmpfs -o size=64k tmpfs {target} && "
            f"(head -c 1000000 /dev/zero > {target}/.fill 2>/dev/null; true) && "
            f"cd {shlex.quote(str(cwd))} && "
            f"{shlex.join(command)}; code=$?; rm -f {target}/.fill; ls -A {target}; exit $code"
        )
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", script], cwd=cwd, env=toy_env(), capture_output=True,
            text=True,
        )  # fmt: skip
    else:
        done = subprocess.run(
            command, cwd=cwd, env=toy_env(), capture_output=True, text=True,
            preexec_fn=_ignore_xfsz_and_limit,
        )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


DRIVER = """
import sys
from symlab.cli import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit as done:
        code = done.code
    sys.stdout.flush()
    print("@@exit", code, flush=True)
    print("@@", file=sys.stderr, flush=True)
"""


def cli_commands(*argvs: list[str]) -> list[str]:
    """One Python process that runs ``symlab ARGV`` for each ARGV in turn (one start-up for
    several commands); :func:`split_results` reads its output back."""
    return [sys.executable, "-c", DRIVER.format(argvs=[list(a) for a in argvs])]


def split_results(out: str, err: str) -> list[tuple[int, str, str]]:
    """(code, stdout, stderr) of each command of :func:`cli_commands`."""
    results, outs, errs = [], out.split("@@exit ")[:-1], err.split("@@\n")
    for index, chunk in enumerate(outs):
        if index:  # the line after the previous marker holds its code
            chunk = chunk.split("\n", 1)[1] if "\n" in chunk else ""
        results.append(chunk)
    codes = [int(line.split()[1]) for line in out.splitlines() if line.startswith("@@exit ")]
    return [(c, o, e) for c, o, e in zip(codes, results, errs, strict=False)]


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content hash (SQLite's -shm index excluded)."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_file() and not path.name.endswith("-shm"):
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        else:
            found[key] = "dir" if path.is_dir() else "other"
    return found
