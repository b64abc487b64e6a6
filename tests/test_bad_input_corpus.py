"""The bad-input corpus: every case -> exit code 2 (CLI) or a ValueError/TypeError (API), one
sentence naming the field or argument and what was expected, no traceback, nothing written.

CLI cases run in this process (``symlab.cli.main``) in a fresh folder and compare the folder
before and after; the cases that need a read-only file system or a full disk run the real
``python -m symlab.cli`` on real media (tests/bad_input_support.py). ``tests/bad_input_table.md``
lists every case with its message: regenerate it with
``SYMLAB_WRITE_BAD_INPUT_TABLE=1 python -m pytest tests/test_bad_input_corpus.py`` (a test
checks that it lists every case).
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from bad_input_support import (
    NO_READ_ONLY,
    READ_ONLY,
    cli_commands,
    run_on_full_disk,
    run_read_only,
    snapshot,
    split_results,
    symlab_command,
)
from cli_in_process import cli
from torch import nn

ENGINE_TESTS = Path(__file__).resolve().parent / "engine"
TABLE = Path(__file__).resolve().parent / "bad_input_table.md"

HIDDEN = 'input_dims = [2]\nwidths = [4]\ndepths = [1]\nseeds = 1\nsamplers = ["gaussian"]\n'  # a valid hidden-symmetries config; cases replace one line


def hidden(line: str) -> bytes:
    """The valid config with the field of ``line`` replaced (or ``line`` appended)."""
    key = line.split("=")[0].strip()
    kept = [x for x in HIDDEN.splitlines() if x.split("=")[0].strip() != key]
    return ("\n".join(kept + [line]) + "\n").encode()


def without(key: str) -> bytes:
    return ("\n".join(x for x in HIDDEN.splitlines() if not x.startswith(key)) + "\n").encode()


@dataclass
class Case:
    """One bad input: CLI ``argv`` (with files to create first) or an API callable."""

    id: str
    expected: str  # a part of the message
    argv: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    api: Any = None
    media: str | None = None  # "read-only" or "full-disk": a real subprocess on real media


def study(name: str, config: bytes, expected: str, id: str) -> Case:
    return Case(id, expected, ["run", name, "-c", "c.toml", "-o", "out"], {"c.toml": config})


def run_hidden(config: bytes, expected: str, id: str) -> Case:
    return study("hidden-symmetries", config, expected, id)


def _mlp(bad: float | None = None) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).double()
    if bad is not None:
        with torch.no_grad():
            model[0].weight[1, 0] = bad
    return model


class _TupleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layer(x), x


def _fd(model: Any, inputs: Any = None) -> Any:
    from symlab.symmetry import functional_dimension

    return functional_dimension(model, inputs)


def _split(alpha: float) -> Any:
    from symlab.critical.embeddings import split_neuron

    return split_neuron(_mlp(), 1, 0, alpha)


def _ladder(lams: Any) -> Any:
    from symlab.train import l2_continuation

    x = torch.ones(4, 1, dtype=torch.float64)
    return l2_continuation(nn.Linear(1, 1, bias=False, dtype=torch.float64), (x, x), lams)


def _nan_points() -> torch.Tensor:
    x = torch.randn(8, 2, dtype=torch.float64)
    x[3, 1] = math.nan
    return x


STAIRCASE = b'dims = [8, 16]\ntargets = ["parity3"]\nseeds = 2\n'
EQUIVARIANCE = b'orbit_dims = [8, 16]\norbit_targets = ["parity2"]\n'
LEAKY = b'effective_depths = [2.0]\nstep_rules = ["equidistant"]\n'
FOREIGN = "foreign/results.sqlite"

CASES = [
    # ---------------------------------------------------------------- spec values (TOML)
    run_hidden(hidden("widths = [0]"), "'widths': expected a list of integers >= 1", "widths=[0]"),
    run_hidden(hidden("widths = [-4]"), "'widths': expected a list of integers >= 1", "widths=[-4]"),
    run_hidden(hidden("widths = []"), "'widths': expected a list of integers >= 1 with at", "widths=[]"),
    run_hidden(hidden("widths = [true]"), "'widths': expected a list of integers", "widths=[true]"),
    run_hidden(hidden("seeds = true"), "'seeds': expected an integer >= 1, got True", "seeds=true"),
    run_hidden(hidden('seeds = "3"'), "'seeds': expected an integer >= 1, got '3'", 'seeds="3"'),
    run_hidden(hidden("seeds = 2.5"), "'seeds': expected an integer >= 1, got 2.5", "seeds=2.5"),
    run_hidden(hidden("seeds = 0"), "'seeds': expected an integer >= 1, got 0", "seeds=0"),
    run_hidden(hidden("bias_std = inf"), "'bias_std': expected a finite number >= 0, got inf", "bias_std=inf"),
    run_hidden(hidden("bias_std = nan"), "'bias_std': expected a number >= 0, got nan", "bias_std=nan"),
    run_hidden(hidden("bias_std = -0.1"), "'bias_std': expected a number >= 0, got -0.1", "bias_std<0"),
    run_hidden(hidden('depths = "three"'), "'depths': expected a list of integers >= 1", "depths=str"),
    run_hidden(hidden('samplers = ["uniform"]'), "'samplers': expected a list of values among 'gaussian'", "sampler unknown"),
    run_hidden(hidden('init = "xavier"'), "'init': expected one of 'he', 'pytorch', got 'xavier'", "init unknown"),
    run_hidden(hidden("diagonal_only = 1"), "'diagonal_only': expected a boolean, got 1", "bool field=1"),
    run_hidden(hidden("widht = [4]"), "'widht' is not a field of hidden-symmetries", "unknown key"),
    run_hidden(without("widths"), "'widths' is missing: expected a list of integers >= 1", "missing field"),
    run_hidden(hidden('study = "staircase"'), "'study': expected 'hidden-symmetries'", "study key mismatch"),
    run_hidden(b"widths = [4,\n", "is not valid TOML", "invalid TOML"),
    study("staircase", STAIRCASE.replace(b"[8, 16]", b"[-3, 16]"), "'dims'", "staircase d<0"),
    study("staircase", STAIRCASE.replace(b'["parity3"]', b"[]"), "'targets'", "staircase no targets"),
    study("staircase", STAIRCASE.replace(b"parity3", b"parity9"), "'targets'", "staircase target unknown"),
    study("staircase", STAIRCASE + b"lr = inf\n", "'lr': expected a finite number", "staircase lr=inf"),
    study("equivariance", EQUIVARIANCE.replace(b"[8, 16]", b"[-8, 16]"), "'orbit_dims'", "equivariance d<0"),
    study("equivariance", EQUIVARIANCE.replace(b'["parity2"]', b"[]"), "'orbit_targets'", "equivariance no targets"),
    study("equivariance", EQUIVARIANCE + b"orbit_seeds = true\n", "'orbit_seeds': expected an integer", "equivariance seeds=true"),
    study("bottleneck", b"depths = [0]\n", "'depths'", "bottleneck depth 0"),
    study("bottleneck", b"depths = [6]\nlam = inf\n", "'lam': expected a finite number", "bottleneck lam=inf"),
    study("saddle-to-saddle", b'dtype = "float16"\n', "'dtype'", "saddle dtype"),
    study("saddle-to-saddle", b"gamma_w_points = 0\n", "'gamma_w_points': expected an integer >= 1", "saddle grid 0"),
    study("leaky-resnet", LEAKY + b"seeds = true\n", "'seeds': expected an integer", "leaky seeds=true"),
    study("leaky-resnet", LEAKY.replace(b'"equidistant"', b'"random"'), "'step_rules'", "leaky step rule"),
    study("leaky-resnet", LEAKY + b"learn_maps = \"yes\"\n", "'learn_maps': expected a boolean", "leaky bool str"),
    study("composition", b"nu_g = [0.0, 2.5]\n", "'nu_g': expected a list of numbers > 0", "composition nu_g=0"),
    study("composition", b"nu_h = [-1.5]\n", "'nu_h': expected a list of numbers > 0", "composition nu_h<0"),
    study("composition", b"d_mid = 15\n", "'d_mid': expected a value < d_in = 15", "composition d_mid>=d_in"),
    study("composition", b"n_train = [100, 1000, 20000]\n", "'n_train': expected max(n_train) + n_test <= 15000", "composition pool too large"),
    # ---------------------------------------------------------------- files and folders
    Case("config is a folder", "config: 'cfg' is a folder; expected a TOML file",
         ["run", "hidden-symmetries", "-c", "cfg", "-o", "out"], {"cfg/keep": b""}),
    Case("config not UTF-8", "config: 'c.toml' is not UTF-8 text",
         ["run", "hidden-symmetries", "-c", "c.toml", "-o", "out"], {"c.toml": b"seeds = 1 # \xff\xfe\n"}),
    Case("config missing", "config: file 'nope.toml' does not exist",
         ["run", "hidden-symmetries", "-c", "nope.toml", "-o", "out"]),
    Case("--out below a file", "out: 'a_file/run' lies below the file",
         ["run", "toy", "-o", "a_file/run"], {"a_file": b"x"}),
    Case("--out is a file", "out: 'a_file' exists and is not a directory",
         ["run", "toy", "-o", "a_file"], {"a_file": b"x"}),
    Case("--out on read-only media", "out: 'ro/run' cannot be written",
         ["run", "toy", "-o", "ro/run"], {"ro/keep": b""}, media="read-only"),
    Case("report into read-only run dir", "DIR: 'run' is read-only; pass --out",
         ["report", "run"], {"run": b"RUN"}, media="read-only"),
    Case("export to a read-only path", "output: 'run/x.csv' cannot be written",
         ["export", "run", "-o", "run/x.csv"], {"run": b"RUN"}, media="read-only"),
    Case("export to a full disk", "output: cannot write 'full/x.csv'",
         ["export", "run", "-o", "full/x.csv"], {"run": b"RUN", "full/keep": b""}, media="full-disk"),
    Case("export below a file", "output: 'a_file/x.csv' lies below the file",
         ["export", "run", "-o", "a_file/x.csv"], {"run": b"RUN", "a_file": b"x"}),
    Case("export bad suffix", "--output: cannot tell the format from the suffix '.txt'",
         ["export", "run", "-o", "x.txt"], {"run": b"RUN"}),
    Case("export bad format", "--format: expected csv or parquet, got 'xlsx'",
         ["export", "run", "--format", "xlsx"], {"run": b"RUN"}),
    Case("show not a folder", "DIR: 'nowhere' is not a directory", ["show", "nowhere"]),
    Case("show no store", "DIR: 'empty' is not a symlab run directory",
         ["show", "empty"], {"empty/keep": b""}),
    Case("0-byte store", "results.sqlite' is empty (0 bytes); expected a symlab results store",
         ["show", "zero"], {"zero/results.sqlite": b""}),
    Case("non-SQLite store", "results.sqlite' is not a SQLite database; expected a symlab",
         ["export", "text"], {"text/results.sqlite": b"id,value\n1,2\n"}),
    Case("foreign SQLite store", "is a SQLite database of another application (tables: songs)",
         ["report", "foreign"], {FOREIGN: b"FOREIGN"}),
    Case("run into a foreign store", "is a SQLite database of another application",
         ["run", "toy", "-o", "foreign"], {FOREIGN: b"FOREIGN"}),
    # ---------------------------------------------------------------- grid size and options
    Case("grid over the job limit", "spec: the grid has 200,000,000 jobs, over the limit of 10,000,000",
         ["run", "hidden-symmetries", "-c", "c.toml", "-o", "out"],
         {"c.toml": hidden("seeds = 200000000")}),
    Case("SYMLAB_MAX_JOBS", "spec: the grid has 8 jobs, over the limit of 5",
         ["run", "toy", "-o", "out"], {"env:SYMLAB_MAX_JOBS": b"5"}),
    Case("SYMLAB_MAX_JOBS not a number", "SYMLAB_MAX_JOBS: expected an integer >= 1, got 'lots'",
         ["run", "toy", "-o", "out"], {"env:SYMLAB_MAX_JOBS": b"lots"}),
    Case("unknown study", "study 'nope': expected one of", ["run", "nope"]),
    Case("unknown preset", "preset 'fast': expected one of quick, paper", ["run", "toy", "-p", "fast"]),
    Case("preset and config", "--preset and --config: expected one of them",
         ["run", "toy", "-p", "quick", "-c", "c.toml"], {"c.toml": b"xs = [1]\n"}),
    Case("--workers 0", "--workers: expected an integer >= 1, got 0", ["run", "toy", "-w", "0"]),
    Case("--workers two", "Invalid value for '--workers'", ["run", "toy", "-w", "two"]),
    Case("unknown option", "No such option: --bogus", ["run", "toy", "--bogus"]),
    Case("--chunk without ray", "--chunk: needs --executor ray", ["run", "toy", "--chunk", "8"]),
    Case("--chunk 0", "--chunk: expected an integer >= 1, got 0",
         ["run", "toy", "--executor", "ray", "--chunk", "0"]),
    Case("fdim bias inf", "--bias-std: expected a finite number >= 0, got inf",
         ["fdim", "2,3,1", "--bias-std", "inf"]),
    Case("fdim one layer", "WIDTHS: expected at least one hidden layer", ["fdim", "2,1"]),
    Case("fdim sampler", "--sampler: expected one of", ["fdim", "2,3,1", "--sampler", "sobol"]),
    Case("leap no supports", "SUPPORTS: expected at least one support", ["boolean", "leap", ""]),
    Case("leap bad support", "SUPPORTS: expected comma-separated distinct coordinates",
         ["boolean", "leap", "1,x"]),
    Case("leap degree without --gaussian", "SUPPORTS: degrees such as '1^2' need --gaussian",
         ["boolean", "leap", "1^2"]),
    # ---------------------------------------------------------------- API
    Case("fdim NaN weight", "model: expected finite weights, got nan", api=lambda: _fd(_mlp(math.nan))),
    Case("fdim inf weight", "model: expected finite weights, got inf", api=lambda: _fd(_mlp(math.inf))),
    Case("fdim NaN inputs", "inputs: expected finite values, got nan at index (3, 1)",
         api=lambda: _fd(_mlp(), _nan_points())),
    Case("fdim integer inputs", "inputs: expected a floating-point tensor (float32 or float64), got dtype torch.int64",
         api=lambda: _fd(_mlp(), torch.ones(8, 2, dtype=torch.int64))),
    Case("fdim LSTM", "model: expected a feed-forward module whose forward returns one tensor, got LSTM",
         api=lambda: _fd(nn.LSTM(2, 3), torch.randn(8, 2))),
    Case("fdim tuple output", "model: expected a forward that returns one tensor, got tuple",
         api=lambda: _fd(_TupleNet(), torch.randn(8, 2))),
    Case("fdim model=None", "model: expected a torch.nn.Module (an MLP or any network), got None",
         api=lambda: _fd(None)),
    Case("split_neuron alpha=nan", "alpha: expected a real number (finite), got nan", api=lambda: _split(math.nan)),
    Case("split_neuron alpha=inf", "alpha: expected a real number (finite), got inf", api=lambda: _split(math.inf)),
    Case("l2_continuation decreasing lams", "lams: expected a strictly increasing ladder, got [0.2, 0.1]",
         api=lambda: _ladder([0.2, 0.1])),
    Case("l2_continuation lams a number", "lams: expected a sequence of positive finite numbers, got 0.1",
         api=lambda: _ladder(0.1)),
    study("cnn-bottleneck", b'tasks = ["frequencies"]\nlam = 0.1\npolish_iters = 5\npolish_from = 0.5\npolish_stages = 3\n',
          "config field 'polish_from': expected a value below lam", "cnn-bottleneck polish_from above lam"),
]  # fmt: skip


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def toy():
    if str(ENGINE_TESTS) not in sys.path:
        sys.path.insert(0, str(ENGINE_TESTS))
    import toy_study

    return toy_study.TOY


@pytest.fixture(scope="module")
def valid_run(toy, tmp_path_factory) -> Path:
    """A real run directory of the toy study (8 jobs), read once (its -shm exists)."""
    from symlab.engine import load_spec, run_study
    from symlab.engine.store import Store

    folder = tmp_path_factory.mktemp("valid") / "run"
    run_study(toy, load_spec(toy), folder)
    Store(folder, create=False).close()
    return folder


def prepare(case: Case, root: Path, valid_run: Path, monkeypatch: Any) -> None:
    for name, content in case.files.items():
        if name.startswith("env:"):
            monkeypatch.setenv(name[4:], content.decode())
            continue
        path = root / name
        if path.exists():  # shared by two cases of the read-only workspace
            continue
        if content == b"RUN":
            shutil.copytree(valid_run, path)
        elif content == b"FOREIGN":
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path)
            with db:
                db.execute("CREATE TABLE songs (title TEXT, seconds REAL)")
            db.close()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def message_of(case: Case, root: Path, capsys) -> tuple[int, str, str]:
    """Run ``case``: (exit code or 2 for an API error of the right kind, stdout, stderr)."""
    if case.api is not None:
        with pytest.raises((ValueError, TypeError)) as info:
            case.api()
        return 2, "", str(info.value)
    if case.media == "full-disk":
        code, out, err = run_on_full_disk(root / "full", symlab_command(*case.argv), root)
        assert "x.csv" not in out, out  # the listing of the full disk after the export
        return code, out, err
    return cli(capsys, *case.argv)


@pytest.fixture(scope="module")
def read_only_results(toy, valid_run, tmp_path_factory) -> dict[str, tuple]:
    """The read-only cases, run in one ``symlab`` process (one start-up) in one workspace made
    read-only: case id -> (code, stdout, stderr); "unchanged" -> whether nothing was written."""
    root = tmp_path_factory.mktemp("read-only")
    cases = [c for c in CASES if c.media == "read-only"]
    for case in cases:
        prepare(case, root, valid_run, None)
    before = snapshot(root)
    ((code, out, err),) = run_read_only(root, [cli_commands(*(c.argv for c in cases))], root)
    assert code == 0, err
    results: dict[str, tuple] = dict(
        zip([c.id for c in cases], split_results(out, err), strict=True)
    )
    results["unchanged"] = snapshot(root) == before
    return results


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, toy, valid_run, tmp_path, monkeypatch, capsys, request):
    if case.media == "read-only" and READ_ONLY is None:
        pytest.skip(NO_READ_ONLY)
    monkeypatch.chdir(tmp_path)
    prepare(case, tmp_path, valid_run, monkeypatch)
    before = snapshot(tmp_path)
    if case.media == "read-only":  # the whole workspace is read-only: nothing can be written
        results = request.getfixturevalue("read_only_results")
        code, out, err = results[case.id]
        assert results["unchanged"]
    else:
        code, out, err = message_of(case, tmp_path, capsys)
    assert code == 2, (out, err)
    assert case.expected in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one sentence, no traceback
    assert "Traceback" not in out + err
    if case.api is None:
        assert lines[0].endswith("."), err
        assert snapshot(tmp_path) == before  # nothing written (no out/ folder either)
    RECORDED[case.id] = lines[0]


RECORDED: dict[str, str] = {}


def table_text(messages: dict[str, str]) -> str:
    rows = [
        "# Bad-input corpus: case -> message",
        "",
        "Generated by `SYMLAB_WRITE_BAD_INPUT_TABLE=1 python -m pytest tests/test_bad_input_corpus.py`;",
        "CLI cases exit with code 2 and write nothing; API cases raise ValueError or TypeError.",
        "Paths are relative to the folder the command ran in.",
        "",
        "| # | case | input | message |",
        "|---|------|-------|---------|",
    ]
    for number, case in enumerate(CASES, 1):
        what = "API: " + case.id if case.api is not None else "symlab " + " ".join(case.argv)
        config = case.files.get("c.toml")
        if config is not None and case.api is None:
            what += " with c.toml: " + " / ".join(
                config.decode(errors="replace").strip().splitlines()
            )
        message = messages.get(case.id, case.expected)
        cells = [str(number), case.id, f"`{what}`", message]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def test_the_corpus_is_large_and_its_table_is_up_to_date():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    assert TABLE.is_file(), (
        "SYMLAB_WRITE_BAD_INPUT_TABLE=1 python -m pytest tests/test_bad_input_corpus.py"
    )
    listed = TABLE.read_text(encoding="utf-8")
    for case in CASES:
        assert f"| {case.id} |" in listed, f"{case.id} missing from {TABLE.name}"


@pytest.fixture(scope="module", autouse=True)
def write_table_when_asked():
    """With SYMLAB_WRITE_BAD_INPUT_TABLE=1, write tests/bad_input_table.md after the corpus."""
    yield
    if os.environ.get("SYMLAB_WRITE_BAD_INPUT_TABLE") == "1" and len(RECORDED) == len(CASES):
        TABLE.write_text(table_text(RECORDED), encoding="utf-8")
