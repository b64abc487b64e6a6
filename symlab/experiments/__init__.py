"""Built-in studies; importing this package registers each with the engine."""

import importlib

# Each entry is one study module (spec + run + summarize + plot); a missing optional one is skipped.
_STUDIES = (
    "hidden_symmetries",
    "critical_points",
    "ntk_dynamics",
    "ntk_optimizers",
    "bottleneck",
    "leaky_resnet",
)

for _name in _STUDIES:
    try:
        importlib.import_module(f"symlab.experiments.{_name}")
    except ModuleNotFoundError as error:  # a study not written yet
        if error.name != f"symlab.experiments.{_name}":
            raise
