"""The code fingerprint follows a study's imports (lazy ones too) into symlab and nothing else."""

import importlib
import sys

from symlab.engine.code_fingerprint import changed_modules, code_fingerprint


def test_fingerprint_follows_imports_and_changes_with_the_source(tmp_path, monkeypatch):
    module = tmp_path / "fp_study.py"
    module.write_text(
        "from symlab.engine.experiment import Experiment\n"
        "def run_job(params):\n"
        "    from symlab.train import sgd  # a lazy import counts\n"
        "    return {}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("fp_study")
    try:
        first = code_fingerprint("fp_study")
        assert "fp_study" in first.modules and "symlab.train.first_order" in first.modules
        assert not any(name.startswith(("symlab.engine", "symlab.cli")) for name in first.modules)
        assert "symlab.symmetry" not in first.modules  # not imported: not part of this study
        assert code_fingerprint("fp_study") == first  # deterministic
        module.write_text(module.read_text() + "# an edit\n")
        second = code_fingerprint("fp_study")
        assert second.digest != first.digest
        assert changed_modules(first.modules, second.modules) == ["fp_study"]
    finally:
        sys.modules.pop("fp_study", None)
