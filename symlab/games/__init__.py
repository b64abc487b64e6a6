"""symlab.games: networks read as games on their graph (Vesseron, Redko & Laclau, AISTATS 2021).

- :mod:`symlab.games.network_paths`: every input-to-output path of a small Linear/ReLU
  network with its value, f_k(x) = Σ_paths x_i Π w_e Π gates (the flows of the congestion-game
  view), enumerated for tiny nets and checked against the forward pass.

The paper's game (players, costs, potential, Wardrop equilibria at critical points) is not
implemented: its body could not be retrieved, and symlab does not guess it.
"""

from symlab.games.network_paths import (
    MAX_PATHS,
    PathDecomposition,
    path_count,
    path_decomposition,
)

__all__ = ["MAX_PATHS", "PathDecomposition", "path_count", "path_decomposition"]
