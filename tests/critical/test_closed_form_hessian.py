"""criticality.hessian / hessian_inertia: the closed-form route equals the torch.func route."""

import pytest
import torch

from symlab.critical import hessian, hessian_inertia, train_to_critical
from symlab.critical.teacher_student import make_teacher, two_layer


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", ["g", "softplus", "relu"])
def test_hessian_closed_form_equals_torch_func(activation, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = make_teacher(3, 3, activation, 0)(x).detach()
    student = two_layer(
        torch.randn(4, 3, generator=g, dtype=torch.float64),
        torch.randn(4, generator=g, dtype=torch.float64),
        activation,
    ).to(dtype)
    data = (x.to(dtype), y.to(dtype))
    closed, generic = hessian(student, data), hessian(student, data, closed_form=False)
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(closed, generic, atol=tol * float(generic.abs().max()), rtol=0)


def test_inertia_at_an_embedded_critical_point_is_route_independent():
    # a narrow critical point split into a wider net: degenerate Hessian with exact zero modes
    g = torch.Generator().manual_seed(1)
    x = torch.randn(100, 2, generator=g, dtype=torch.float64)
    y = make_teacher(2, 3, "g", 1)(x).detach()
    narrow = two_layer(
        torch.randn(2, 2, generator=g, dtype=torch.float64),
        torch.randn(2, generator=g, dtype=torch.float64),
        "g",
    )
    assert train_to_critical(narrow, (x, y), tol=1e-10, max_iter=500).converged
    w, a = narrow[0].weight.detach(), narrow[2].weight.detach()[0]  # split neuron 0 at α = 0.3
    wide = two_layer(
        torch.cat([w, w[:1]]), torch.cat([a * torch.tensor([0.3, 1.0]), 0.7 * a[:1]]), "g"
    )
    closed = hessian_inertia(wide, (x, y))
    generic = hessian_inertia(wide, (x, y), closed_form=False)
    assert closed.as_tuple() == generic.as_tuple() and closed.zero >= 1
