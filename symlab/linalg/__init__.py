"""symlab.linalg: parameter Jacobians, certified numerical rank, soft ranks of spectra."""

from symlab.linalg.certified import CertifiedRank, certified_rank, exact_jacobian
from symlab.linalg.jacobian import parameter_jacobian
from symlab.linalg.modular import rank_mod_p
from symlab.linalg.rank import RankResult, numerical_rank
from symlab.linalg.spectra import effective_rank, stable_rank

__all__ = [
    "CertifiedRank",
    "RankResult",
    "certified_rank",
    "effective_rank",
    "exact_jacobian",
    "numerical_rank",
    "parameter_jacobian",
    "rank_mod_p",
    "stable_rank",
]
