"""Package layout: a subpackage's public attributes never hide its own submodules.

``symlab.nets.mlp`` used to be both the function and the module symlab/nets/mlp.py: once the
package imported the function, ``symlab.nets.mlp`` no longer reached the module (monkeypatching
or ``import symlab.nets.mlp as m`` got the function). Every submodule must stay reachable as
the package attribute of its name.
"""

import importlib
import pkgutil

import pytest

import symlab


def _packages() -> list[str]:
    names = ["symlab"]
    names += [m.name for m in pkgutil.walk_packages(symlab.__path__, "symlab.") if m.ispkg]
    return sorted(names)


@pytest.mark.parametrize("package", _packages())
def test_no_attribute_shadows_a_submodule(package):
    pkg = importlib.import_module(package)
    shadowed = []
    for sub in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"{package}.{sub.name}")
        if getattr(pkg, sub.name) is not module:
            shadowed.append(f"{package}.{sub.name} ({type(getattr(pkg, sub.name)).__name__})")
    assert not shadowed, f"attributes hiding submodules: {', '.join(shadowed)}"
