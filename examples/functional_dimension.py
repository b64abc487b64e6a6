"""Functional dimension and hidden symmetries of a ReLU network (Grigsby-Lindsey-Rolnick 2023).

Run: python examples/functional_dimension.py
"""

import torch

import symlab
from symlab.nets import mlp

net = mlp([4, 8, 8, 1], bias_std=0.1, seed=0)  # ReLU, He init, float64
fd = symlab.functional_dimension(net, seed=0)  # sample grown until lower == upper (or budget)
print(
    f"rank {fd.rank} of bound {fd.bound} (deficit {fd.deficit}) on {fd.n_points} points; "
    f"gap at the cut {fd.gap:.1e}; dim_fun in [{fd.lower}, {fd.upper}], exact: {fd.exact} "
    f"(stop: {fd.saturated})"
)

# The same function with other parameters: a random permutation + positive rescaling.
twin = symlab.symmetry.random_symmetry(net, seed=1)
x = torch.randn(5, 4, dtype=torch.float64)
assert torch.allclose(net(x), twin(x))
assert symlab.functional_dimension(twin, seed=0).rank == fd.rank

# Kill one neuron of layer 1 (incoming weights 0, bias -1): the deficit grows by n0 + n2 = 12.
dead = symlab.symmetry.permute(net, 1, list(range(8)))
with torch.no_grad():
    dead[0].weight[3].zero_()
    dead[0].bias[3] = -1.0
report = symlab.symmetry.diagnose(dead, torch.randn(4000, 4, dtype=torch.float64), compute_fd=True)
print(report)
