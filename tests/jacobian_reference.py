"""Independent references shared by the tests (torch.func only, nothing from symlab):
the Jacobian J E_Z of a model's outputs in its parameters, and a multi-scale input sample."""

import torch
from torch.func import functional_call, jacrev, vmap


def multiscale(n, n0, seed=0):
    """x = r u, u ~ N(0, I), r = 10^U(-2, 3): reaches far-away and tiny linear regions."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, n0, generator=g, dtype=torch.float64)
    return u * 10 ** (torch.rand(n, 1, generator=g, dtype=torch.float64) * 5 - 2)


def jacobian(model, x):
    """J E_Z by torch.func, independent of symlab: (N*K, D), rows point-major, model's dtype."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, xi):
        return functional_call(model, p, (xi[None],))[0]

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    first = jac[next(iter(params))]
    return torch.cat([jac[k].reshape(first.shape[0] * first.shape[1], -1) for k in params], 1)
