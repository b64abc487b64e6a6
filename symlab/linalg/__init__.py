"""symlab.linalg: parameter Jacobians, certified numerical rank, soft ranks of spectra."""

from symlab.linalg.jacobian import parameter_jacobian
from symlab.linalg.rank import RankResult, numerical_rank
from symlab.linalg.spectra import effective_rank, stable_rank

__all__ = [
    "RankResult",
    "effective_rank",
    "numerical_rank",
    "parameter_jacobian",
    "stable_rank",
]
