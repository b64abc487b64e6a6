"""The runnable examples in examples/ are documentation: each must run and print its results."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


# What each example must print: the numbers its docstring promises.
EXPECTED = {
    "functional_dimension": ["observed deficit 12", "unexplained 0", "predicted deficit 12"],
    "embedding_principle": ["same function: True", "gradient after splitting: "],
    "kernel_tracking": ["distance_from_init", "kernel shape (8, 8, 10, 10)"],
}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "an example must print what it computed"
    for text in EXPECTED.get(script.stem, []):
        assert text in done.stdout, f"{script.name} should print {text!r}"


def test_examples_found() -> None:
    assert {p.stem for p in EXAMPLES} >= {
        "functional_dimension",
        "kernel_tracking",
        "embedding_principle",
    }
