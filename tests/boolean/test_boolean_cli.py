"""``symlab boolean leap`` and ``symlab boolean walsh``: outputs, and bad input -> one red
sentence, exit 2, nothing written (in-process runner; one real entry-point run)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_in_process import cli

BLACK_BOXES = """
import torch

def staircase(x):
    return x[:, 0] + x[:, 0] * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] * x[:, 4]

def identity(x):
    return x

def broken(x):
    raise ZeroDivisionError("division by zero in the user's code")

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
"""


@pytest.fixture()
def boxes(tmp_path, monkeypatch):
    """A module of black boxes in the working directory, under a name unique to this test."""
    name = f"boxes_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(BLACK_BOXES))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if "__pycache__" not in str(p))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["1 1,2 1,2,3"], ["leap: 1", "merged staircase: yes", "{1} (+1) -> {1,2} (+1)"]),
        (["1", "1,2,3"], ["leap: 2", "merged staircase: no", "{1} (+1) -> {1,2,3} (+2)"]),
        (["1,2 2,3 3,4"], ["leap: 2", "merged staircase: no"]),
        (["1,2,3"], ["leap: 3"]),
        (["1 2 1,2,3"], ["leap: 1", "merged staircase: yes"]),
        (["--gaussian", "1^3"], ["leap: 3", "{1^3} (+3)"]),
        (["--gaussian", "1^2 1,2"], ["leap: 2", "{1,2} (+2) -> {1^2} (+0)"]),
        (["--gaussian", "1,2 1,2,3,4"], ["leap: 2"]),
    ],
)
def test_leap_prints_the_leap_msp_and_ordering(capsys, argv, expected):
    code, out, err = cli(capsys, "boolean", "leap", *argv)
    assert code == 0 and err == ""
    for text in expected:
        assert text in out


def test_walsh_prints_top_coefficients_and_degree_profile(capsys, boxes):
    code, out, err = cli(capsys, "boolean", "walsh", f"{boxes}:staircase", "--dim", "6")
    assert code == 0, err
    assert "E f² = 2.25" in out and "3 of 64 above" in out
    rows = [line for line in out.splitlines() if "{" in line and "│" in line]
    assert [r.split("│")[1].strip() for r in rows] == ["{1}", "{1,2}", "{3,4,5}"]
    assert "44.44%" in out and "11.11%" in out  # W^1 = W^2 = 1, W^3 = 0.25 of E f² = 2.25
    code, out, _ = cli(
        capsys, "boolean", "walsh", f"{boxes}:model", "--dim", "6", "--supports", "1 2,3"
    )
    assert code == 0 and "the coefficients asked for" in out and "{2,3}" in out


def test_walsh_estimates_with_intervals_in_high_dimension(capsys, boxes):
    code, out, err = cli(
        capsys, "boolean", "walsh", f"{boxes}:staircase", "--dim", "80", "--estimate",
        "--supports", "1 3,4,5 7", "--samples", "4000",
    )  # fmt: skip
    assert code == 0, err
    assert "estimated from 4000 uniform points" in out and "95% intervals" in out
    row = next(line for line in out.splitlines() if "{3,4,5}" in line)
    low, high = (float(v) for v in row.split("│")[4:6])
    assert low < 0.5 < high


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["leap", "0,1"], "supports: expected 1-based integer coordinates (>= 1), got [0, 1]."),
        (["leap", "1,1"], "supports: expected distinct coordinates in a support"),
        (["leap", "1,x"], "SUPPORTS: expected comma-separated distinct coordinates"),
        (["leap", "1^2"], "SUPPORTS: degrees such as '1^2' need --gaussian."),
        (["leap", "--gaussian", "1^2,1"], "SUPPORTS: expected comma-separated distinct"),
        (["leap", "--gaussian", "1^0"], "supports: expected 1-based coordinates with degrees"),
        (["leap", ""], "SUPPORTS: expected at least one support"),
        (["walsh", "{m}", "--dim", "6"], "MODULE:FUNC: expected a module and a function"),
        (["walsh", "nomodule_xyz:f", "--dim", "6"], "MODULE:FUNC: cannot import 'nomodule_xyz'"),
        (["walsh", "{m}:nothing", "--dim", "6"], "has no attribute 'nothing'."),
        (["walsh", "{m}:torch", "--dim", "6"], "MODULE:FUNC: expected a function or an nn.Module"),
        (["walsh", "{m}:identity", "--dim", "6"], "f: expected a real tensor of shape (64,)"),
        (["walsh", "{m}:model", "--dim", "5"], "mat1 and mat2 shapes"),
        (["walsh", "{m}:staircase", "--dim", "30"], "--dim: expected an integer between 1 and 24"),
        (["walsh", "{m}:staircase", "--dim", "4"], "IndexError"),
        (["walsh", "{m}:staircase", "--dim", "6", "--top", "0"], "--top: expected an integer"),
        (["walsh", "{m}:staircase", "--dim", "9", "--estimate"], "--estimate: expected --supp"),
        (["walsh", "{m}:staircase", "--dim", "3", "--supports", "5"], "--dim: expected an int"),
        (["walsh", "{m}:staircase", "--dim", "6", "--samples", "1"], "--samples: expected"),
        (["walsh", "{m}:staircase", "--dim", "6", "--confidence", "1"], "--confidence: exp"),
        (["walsh", "{m}:broken", "--dim", "6"], "raised ZeroDivisionError: division by zero"),
        (["walsh", "{m}:staircase"], "Missing option '--dim' (see symlab boolean walsh --help)."),
    ],
)
def test_bad_input_is_one_red_sentence_and_writes_nothing(capsys, tmp_path, boxes, argv, message):
    before = listing(tmp_path)
    code, out, err = cli(capsys, "boolean", *(a.replace("{m}", boxes) for a in argv))
    user_error = message in ("IndexError", "mat1 and mat2 shapes") or "raised" in message
    assert code == (1 if user_error else 2)
    assert message in err and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(".")
    assert listing(tmp_path) == before


def test_real_entry_point():
    ok = subprocess.run(
        [sys.executable, "-m", "symlab.cli", "boolean", "leap", "1 1,2,3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0 and "leap: 2" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "symlab.cli", "boolean", "leap", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "supports: expected" in bad.stderr
    assert "Traceback" not in bad.stderr
