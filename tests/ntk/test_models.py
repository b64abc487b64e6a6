"""Model constructors of symlab.ntk and symlab.nets: seed=None draws from torch's global
generator (honouring torch.manual_seed) and never reseeds it."""

import pytest
import torch

from symlab.nets import mlp
from symlab.ntk.models import TwoLayerNTK, small_cnn

CONSTRUCTORS = {
    "small_cnn": lambda: small_cnn(3, 2, image_side=4, seed=None),
    "mlp": lambda: mlp([3, 4, 1], seed=None),
}


@pytest.mark.parametrize("name", list(CONSTRUCTORS))
def test_seed_none_honours_torch_manual_seed_and_keeps_the_global_stream(name):
    """Two runs from torch.manual_seed(0): equal models and equal global draws afterwards (a
    reseeded global generator, e.g. by torch.seed(), gives different draws)."""
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = CONSTRUCTORS[name]()
        runs.append((list(model.parameters()), torch.rand(4)))
    (p1, after1), (p2, after2) = runs
    assert all(torch.equal(a, b) for a, b in zip(p1, p2, strict=True))
    assert torch.equal(after1, after2)


def test_seeded_constructors_leave_the_global_generator_alone():
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    small_cnn(3, 2, image_side=4, seed=5)
    mlp([3, 4, 1], seed=5)
    TwoLayerNTK(3, 4, seed=5)
    assert torch.equal(torch.rand(4), expected)
