"""Public functions of symlab.symmetry are not hidden by (or hiding) submodules of the same name."""

import importlib.util

import symlab
import symlab.symmetry


def test_public_functions_have_no_homonymous_submodule():
    for name in ("diagnose", "functional_dimension", "canonicalize", "fd_bound"):
        assert callable(getattr(symlab.symmetry, name))
        assert importlib.util.find_spec(f"symlab.symmetry.{name}") is None
    assert symlab.functional_dimension is symlab.symmetry.functional_dimension
