"""The linearised (first-order Taylor) network and the NTK kernel-regression predictor.

- f_lin(theta, x) = f(theta_t, x) + J(theta_t, x) (theta - theta_t) (Lee et al., "Wide neural
  networks of any depth evolve as linear models under gradient descent", NeurIPS 2019), computed
  with one forward-mode product ``torch.func.jvp`` (cost about 3 forward passes, no Jacobian).
- kernel regression with the NTK: f(x_test) = Theta(x_test, X) (Theta(X, X) + ridge I)^{-1} Y,
  the limit of gradient flow on the MSE from a zero-output start (Jacot et al. 2018, Lee et al. 2019).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, jvp

from symlab.ntk.metrics import ntk_matrix


class LinearizedModel(nn.Module):
    """f_lin around theta_t, with its own parameters (initialised at theta_t) to train side by side.

    Call ``lin(x)`` to evaluate f_lin at the wrapper's current parameters (train it with any
    optimizer on ``lin.parameters()``), or ``lin(params, x)`` for the functional form f_lin(params, x)
    with ``params`` a name -> tensor dict like ``dict(model.named_parameters())``. Parameters that
    do not require grad in ``model`` are held at their value (not linearised).
    """

    def __init__(self, model: nn.Module, params_t: dict[str, torch.Tensor]):
        super().__init__()
        self._model = [copy.deepcopy(model)]  # a list keeps it out of .parameters()
        self.names = list(params_t)
        self.params_t = {n: p.detach().clone() for n, p in params_t.items()}
        # a list keeps the model's parameter order (ParameterDict would sort the names)
        self.params = nn.ParameterList([nn.Parameter(p.clone()) for p in self.params_t.values()])

    @property
    def model(self) -> nn.Module:
        """The frozen copy of the network being linearised."""
        return self._model[0]

    def current_params(self) -> dict[str, torch.Tensor]:
        """The wrapper's parameters under the original names."""
        return dict(zip(self.names, self.params, strict=True))

    def f_lin(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """f(theta_t, x) + J(theta_t, x)(theta - theta_t), differentiable in ``params``."""
        missing = [n for n in self.names if n not in params]
        if missing:
            raise ValueError(f"params: expected entries for every parameter, missing {missing}")
        tangent = {n: params[n] - self.params_t[n] for n in self.names}

        def f(p):
            return functional_call(self.model, p, (x,))

        out, change = jvp(f, (self.params_t,), (tangent,))
        return out + change

    def forward(self, *args):
        if len(args) == 1:
            return self.f_lin(self.current_params(), args[0])
        if len(args) == 2:
            return self.f_lin(*args)
        raise ValueError(f"args: expected (x) or (params, x), got {len(args)} arguments")


def linearize(
    model: nn.Module, params_t: dict[str, torch.Tensor] | torch.Tensor | None = None
) -> LinearizedModel:
    """The first-order Taylor model of ``model`` around ``params_t`` (default: its current parameters).

    ``params_t`` is a name -> tensor dict or a flat vector over the trainable parameters in
    ``named_parameters`` order. Returns a :class:`LinearizedModel` (an nn.Module).
    """
    names = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not names:
        raise ValueError("model: expected at least one parameter that requires grad")
    if params_t is None:
        params_t = {n: p.detach() for n, p in names.items()}
    elif torch.is_tensor(params_t):
        total = sum(p.numel() for p in names.values())
        if params_t.dim() != 1 or params_t.numel() != total:
            raise ValueError(
                f"params_t: expected a flat vector of {total} entries, got shape {tuple(params_t.shape)}"
            )
        flat, params_t, offset = params_t, {}, 0
        for n, p in names.items():
            params_t[n] = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
    else:
        bad = [n for n in names if n not in params_t or params_t[n].shape != names[n].shape]
        if bad:
            raise ValueError(
                f"params_t: expected a tensor shaped like each parameter, wrong or missing for {bad}"
            )
        params_t = {n: params_t[n] for n in names}
    return LinearizedModel(model, params_t)


def kernel_regression(
    k_train_train: torch.Tensor,
    y_train: torch.Tensor,
    k_test_train: torch.Tensor,
    ridge: float = 0.0,
) -> torch.Tensor:
    """NTK predictor Theta_tx (Theta_xx + ridge I)^{-1} y, solved in float64.

    Kernels are (N, N) / (M, N), or NTKs (N, N, K, K) / (M, N, K, K) used as (N K, N K) matrices.
    ``y_train`` is (N,) or (N, C) (with an NTK, C = K; with an (N, N) kernel each column is solved
    with the same kernel). ``ridge`` >= 0 is added to the diagonal (absolute, in kernel units).
    Solves by Cholesky, falling back to least squares (minimum-norm) when the regularised kernel is
    singular (e.g. ridge = 0 with repeated points). Cost O((N K)^3). Returns (M,) or (M, C) in the
    kernel's dtype.
    """
    try:
        ridge = float(ridge)
    except (TypeError, ValueError):
        ridge = -1.0
    if not ridge >= 0:  # also rejects NaN
        raise ValueError(f"ridge: expected a non-negative number, got {ridge!r}")
    if k_train_train.dim() != k_test_train.dim() or k_train_train.dim() not in (2, 4):
        raise ValueError(
            "k_test_train: expected the same rank as k_train_train, (N, N) or (N, N, K, K) kernels"
        )
    n = k_train_train.shape[0]
    if k_train_train.shape[1] != n or k_test_train.shape[1] != n:
        raise ValueError(
            f"k_test_train: expected {n} training columns, got shape {tuple(k_test_train.shape)}"
        )
    if y_train.shape[0] != n:
        raise ValueError(f"y_train: expected {n} rows, got shape {tuple(y_train.shape)}")
    dtype = k_train_train.dtype
    kxx = ntk_matrix(k_train_train.detach().double())
    ktx = ntk_matrix(k_test_train.detach().double())
    y = y_train.detach().double()
    m = k_test_train.shape[0]
    if k_train_train.dim() == 4:
        kout = k_train_train.shape[2]
        if y.reshape(n, -1).shape[1] != kout:
            raise ValueError(
                f"y_train: expected {kout} columns for this NTK, got shape {tuple(y_train.shape)}"
            )
        rhs = y.reshape(n * kout, 1)
    else:
        rhs = y.reshape(n, -1)
    a = (kxx + kxx.T) / 2 + ridge * torch.eye(kxx.shape[0], dtype=torch.float64, device=kxx.device)
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        alpha = torch.cholesky_solve(rhs, chol)
    else:
        alpha = torch.linalg.lstsq(a, rhs, driver="gelsd").solution
    pred = ktx @ alpha
    if k_train_train.dim() == 4:
        pred = pred.reshape(m, -1)
    return pred.reshape((m, *y_train.shape[1:])).to(dtype)
