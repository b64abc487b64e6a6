"""Embedding principle: a critical point of a narrow net stays critical when a neuron is split.

Fukumizu & Amari 2000; Zhang et al. 2021; Simsek et al. 2021. Run: python examples/embedding_principle.py
"""

import torch

import symlab.critical as critical
from symlab.nets import mlp

torch.manual_seed(0)
teacher = mlp([2, 3, 1], activation="tanh", init="custom", sigma_w=2.0, sigma_b=0.5, seed=1)
x = torch.randn(200, 2, dtype=torch.float64)
y = teacher(x).detach()

student = mlp([2, 2, 1], activation="tanh", init="custom", sigma_w=1.0, sigma_b=0.5, seed=2)
point = critical.train_to_critical(student, (x, y))  # L-BFGS + Newton, float64
print(f"width-2 student: loss {point.loss:.3e}, gradient {point.grad_norm:.1e}")
before = critical.hessian_inertia(student, (x, y))

wider = critical.split_neuron(student, layer=1, neuron=0, alpha=0.3)  # width 3, same function
print("same function:", torch.allclose(student(x), wider(x), atol=1e-12, rtol=0))
print(f"gradient after splitting: {critical.gradient_norm(wider, (x, y)):.1e}")
after = critical.hessian_inertia(wider, (x, y))
print(
    f"inertia (neg, zero, pos): {before.negative, before.zero, before.positive} -> "
    f"{after.negative, after.zero, after.positive}"
)
print(
    "T(3, 4) =",
    critical.count_global_minima_subspaces(3, 4),
    " G(2, 3) =",
    critical.count_symmetry_induced_subspaces(2, 3),
)
