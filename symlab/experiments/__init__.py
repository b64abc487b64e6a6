"""Built-in studies; importing this package registers each with the engine."""

import importlib

# Each entry is one study module (spec + run + summarize + plot); every one must import.
STUDIES = (
    "hidden_symmetries",
    "critical_points",
    "ntk_dynamics",
    "ntk_optimizers",
    "staircase",
    "equivariance",
    "saddle_to_saddle",
    "bottleneck",
    "leaky_resnet",
    "beyond_ntk",
    "spectral_bias",
    "cnn_bottleneck",
    "rank_jumps",
    "sparsity",
    "composition",
)


def import_studies() -> None:
    """Import every module in ``STUDIES`` (each registers its study); ImportError naming the
    module when one cannot be imported (a misspelled entry fails here, it is never skipped)."""
    for name in STUDIES:
        module = f"symlab.experiments.{name}"
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(
                f"built-in study module {module} cannot be imported ({error})"
            ) from error


import_studies()
