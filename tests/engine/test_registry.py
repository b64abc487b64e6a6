"""Studies of a user's own module through SYMLAB_EXPERIMENTS (a real subprocess)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from symlab.engine import get_experiment
toy = get_experiment("toy")
print(toy.name, "symlab.experiments" in sys.modules, "torch" in sys.modules)
"""


def test_user_module_registers_without_importing_the_builtin_studies(toy_env, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", CODE], env=toy_env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    # running a user's study imports neither the built-in studies nor torch
    assert out.stdout.strip() == "toy False False"


def test_a_misspelled_builtin_study_fails_loudly(monkeypatch):
    import pytest

    import symlab.experiments as builtin

    monkeypatch.setattr(builtin, "STUDIES", (*builtin.STUDIES, "ntk_dynamcs"))
    with pytest.raises(ImportError, match=r"symlab\.experiments\.ntk_dynamcs"):
        builtin.import_studies()
