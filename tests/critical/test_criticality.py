"""Criticality: Hessian vs dense references, inertia (dense and Lanczos), the embedding principle."""

import pytest
import torch

from symlab.critical.criticality import (
    gradient_norm,
    hessian,
    hessian_inertia,
    hessian_vector_product,
    predicted_split_inertia,
    splitting_matrix,
    train_to_critical,
)
from symlab.critical.embeddings import add_zero_neuron, split_neuron
from symlab.nets import flatten_params, mlp, with_params


def _data(n=50, d=2, k=1, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    return x, torch.randn(n, k, generator=g, dtype=dtype)


def _loss_of(model, x, y):
    names = [n for n, _ in model.named_parameters()]

    def loss(theta):
        params = dict(zip(names, _reshape_split(model, theta), strict=True))
        return ((torch.func.functional_call(model, params, (x,)) - y) ** 2).mean()

    return loss


def _reshape_split(model, theta):
    chunks = torch.split(theta, [p.numel() for p in model.parameters()])
    return [c.view_as(p) for c, p in zip(chunks, model.parameters(), strict=True)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hessian_matches_autograd_functional_and_finite_differences(dtype):
    x, y = _data(d=3, k=2, dtype=dtype)
    model = mlp([3, 4, 2], "tanh", seed=1, dtype=dtype)
    h = hessian(model, (x, y))
    theta = flatten_params(model).double()
    model64, x64, y64 = mlp([3, 4, 2], "tanh", seed=1), x.double(), y.double()

    def loss(t):
        return ((torch.func.functional_call(model64, dict(zip(
            [n for n, _ in model64.named_parameters()], _reshape_split(model64, t), strict=True
        )), (x64,)) - y64) ** 2).mean()  # fmt: skip

    reference = torch.autograd.functional.hessian(loss, theta)
    atol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(h.double(), reference, atol=atol, rtol=1e-4)
    if dtype == torch.float64:  # central differences of the gradient, step 1e-5: error O(1e-10)
        grad, eps = torch.func.grad(loss), 1e-5
        columns = [
            (grad(theta + eps * e) - grad(theta - eps * e)) / (2 * eps)
            for e in torch.eye(theta.numel(), dtype=torch.float64)
        ]
        torch.testing.assert_close(h, torch.stack(columns, 1), atol=1e-8, rtol=0)
    assert gradient_norm(model, (x, y)) == pytest.approx(
        float(torch.func.grad(loss)(theta).abs().max()), rel=1e-5
    )


def test_hessian_vector_product_matches_dense():
    x, y = _data(d=3, k=2)
    model = mlp([3, 6, 2], "softplus", seed=2)
    h, product = hessian(model, (x, y)), hessian_vector_product(model, (x, y))
    for seed in range(3):
        v = torch.randn(h.shape[0], generator=torch.Generator().manual_seed(seed), dtype=h.dtype)
        torch.testing.assert_close(product(v), h @ v, atol=1e-12, rtol=1e-10)


def test_inertia_of_rank_deficient_least_squares_is_exact():
    """Linear model on inputs spanning a 2-dim subspace of R^4: H = (2/NK) X̃ᵀX̃ ⊗ I_K has exactly
    (4 + 1 - 3) · K = 4 zero eigenvalues and 6 positive ones."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 2, generator=g, dtype=torch.float64) @ torch.randn(
        2, 4, generator=g, dtype=torch.float64
    )
    y = torch.randn(30, 2, generator=g, dtype=torch.float64)
    model = mlp([4, 2], "identity", seed=0)
    inertia = hessian_inertia(model, (x, y))
    assert inertia.as_tuple() == (0, 4, 6) and not inertia.ambiguous and inertia.gap > 1e6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dense_inertia_counts_match_eigvalsh_of_the_reference_hessian(dtype):
    x, y = _data(d=3, k=2, dtype=dtype)
    model = mlp([3, 5, 2], "tanh", seed=3, dtype=dtype)
    inertia = hessian_inertia(model, (x, y))
    theta = flatten_params(model).double()
    model64 = mlp([3, 5, 2], "tanh", seed=3)
    reference = torch.linalg.eigvalsh(torch.autograd.functional.hessian(
        _loss_of(model64, x.double(), y.double()), theta))  # fmt: skip
    tol = inertia.tol
    expected = (int((reference < -tol).sum()), int((reference.abs() <= tol).sum()))
    assert (inertia.negative, inertia.zero) == expected and inertia.negative > 0
    assert inertia.negative + inertia.zero + inertia.positive == theta.numel()


def test_lanczos_matches_dense_on_a_moderate_model():
    """mlp (3, 12, 12, 1), D = 217, random point: the k smallest Lanczos eigenvalues agree with the
    dense eigvalsh ones, and so do the inertia counts (Lanczos grows k past the negative ones)."""
    x, y = _data(n=40, d=3, k=1, seed=4)
    model = mlp([3, 12, 12, 1], "tanh", seed=5)
    dense = hessian_inertia(model, (x, y), method="dense")
    lanczos = hessian_inertia(model, (x, y), method="lanczos", k=8, tol=dense.tol)
    assert lanczos.complete and lanczos.as_tuple() == dense.as_tuple() and dense.negative > 0
    found = lanczos.eigenvalues
    torch.testing.assert_close(found, dense.eigenvalues[: found.numel()], atol=1e-9, rtol=1e-7)


@pytest.fixture(scope="module", params=[False, True], ids=["bias-free", "bias"])
def narrow_critical_point(request):
    """Width-2 student of a width-3 teacher (softplus, float64), trained to gradient ≤ 1e-10."""
    bias = request.param
    g = torch.Generator().manual_seed(11)
    x = torch.randn(120, 2, generator=g, dtype=torch.float64)
    teacher = mlp(
        [2, 3, 1], "softplus", init="custom", sigma_w=2.0, sigma_b=0.5, seed=12, bias=bias
    )
    y = teacher(x).detach()
    student = mlp([2, 2, 1], "softplus", seed=13, bias=bias)
    result = train_to_critical(student, (x, y), tol=1e-10)
    assert result.converged and result.grad_norm <= 1e-10 and result.loss > 1e-6
    return student, (x, y)


@pytest.mark.parametrize("alpha", [-1.0, 0.0, 0.3, 0.5, 1.0, 2.0])
def test_splitting_keeps_criticality_and_adds_the_predicted_inertia(narrow_critical_point, alpha):
    """Fukumizu–Amari: split at α adds inertia(α(1−α)B) + (0, 1, 0) (Sylvester; see module doc).

    Parameters added: d̃ + 1 (d̃ = d, or d + 1 with a bias). Zero eigenvalues grow by 1 for
    α ∉ {0, 1} and by d̃ + 1 at α ∈ {0, 1}; the negative and positive counts never decrease."""
    model, data = narrow_critical_point
    narrow = hessian_inertia(model, data)
    d_tilde = model[0].weight.shape[1] + (model[0].bias is not None)
    for neuron in (0, 1):
        wide = split_neuron(model, 1, neuron, alpha)
        assert flatten_params(wide).numel() == flatten_params(model).numel() + d_tilde + 1
        assert gradient_norm(wide, data) <= 1e-10
        inertia = hessian_inertia(wide, data, tol=narrow.tol)
        predicted = predicted_split_inertia(narrow, splitting_matrix(model, data, neuron), alpha)
        assert inertia.as_tuple() == predicted
        expected_new_zeros = d_tilde + 1 if alpha in (0.0, 1.0) else 1
        assert inertia.zero - narrow.zero >= expected_new_zeros
        assert inertia.negative >= narrow.negative and inertia.positive >= narrow.positive
        if alpha in (0.0, 1.0):
            assert inertia.zero - narrow.zero == d_tilde + 1


def test_splitting_matrix_matches_second_derivative_of_the_loss(narrow_critical_point):
    """B is the Hessian of θ ↦ L along ξ for (w + (1−α)ξ, αa), (w − αξ, (1−α)a), divided by α(1−α)."""
    model, data = narrow_critical_point
    alpha, neuron = 0.3, 0
    wide = split_neuron(model, 1, neuron, alpha)
    theta, d_tilde = flatten_params(wide), model[0].weight.shape[1] + (model[0].bias is not None)
    d = model[0].weight.shape[1]

    def loss_along(xi):
        w = wide[0].weight.detach().clone()
        w = torch.cat(
            [
                w[:neuron],
                (w[neuron] + (1 - alpha) * xi[:d])[None],
                w[neuron + 1 : -1],
                (w[-1] - alpha * xi[:d])[None],
            ]
        )
        params = {"0.weight": w, "2.weight": wide[2].weight.detach()}
        if model[0].bias is not None:
            b = wide[0].bias.detach()
            params["0.bias"] = torch.cat(
                [
                    b[:neuron],
                    (b[neuron] + (1 - alpha) * xi[d])[None],
                    b[neuron + 1 : -1],
                    (b[-1] - alpha * xi[d])[None],
                ]
            )
            params["2.bias"] = wide[2].bias.detach()
        out = torch.func.functional_call(wide, params, (data[0],))
        return ((out - data[1]) ** 2).mean()

    block = torch.autograd.functional.hessian(loss_along, torch.zeros(d_tilde, dtype=theta.dtype))
    torch.testing.assert_close(
        block, alpha * (1 - alpha) * splitting_matrix(model, data, neuron), atol=1e-12, rtol=1e-9
    )


def test_zero_neuron_with_zero_incoming_weights_is_a_null_embedding(narrow_critical_point):
    """With an output bias, a neuron (w = 0, b, a = 0) keeps criticality (∂L/∂a = σ(b) ∂L/∂b_out = 0);
    derived inertia change (1, d, 1) when m = Σ_n ∂L/∂f_n x_n ≠ 0: one new negative direction.
    Without an output bias, or with random incoming weights, a zero neuron is not critical."""
    model, data = narrow_critical_point
    if model[0].bias is None:  # no output bias: ∂L/∂a = σ(0) Σ_n ∂L/∂f_n ≠ 0, not critical
        wide = add_zero_neuron(model, 1, incoming=torch.zeros(model[0].weight.shape[1]))
        assert gradient_norm(wide, data) > 1e-6
        return
    d = model[0].weight.shape[1]
    narrow = hessian_inertia(model, data)
    wide = add_zero_neuron(model, 1, incoming=torch.tensor([0.0] * d + [0.4]))
    assert gradient_norm(wide, data) <= 1e-10
    inertia = hessian_inertia(wide, data, tol=narrow.tol)
    assert inertia.as_tuple() == (narrow.negative + 1, narrow.zero + d, narrow.positive + 1)
    assert gradient_norm(add_zero_neuron(model, 1, seed=3), data) > 1e-6


def test_lanczos_counts_repeated_zero_eigenvalues_at_an_embedded_point(narrow_critical_point):
    model, data = narrow_critical_point
    wide = split_neuron(split_neuron(model, 1, 0, 1.0), 1, 1, 0.4)
    dense = hessian_inertia(wide, data)
    lanczos = hessian_inertia(wide, data, method="lanczos", k=4, tol=dense.tol)
    assert dense.zero >= 4 and lanczos.complete and lanczos.as_tuple() == dense.as_tuple()


def test_bad_input_raises_value_errors():
    x, y = _data()
    model = mlp([2, 3, 1], "tanh", seed=0)
    with pytest.raises(ValueError, match="method"):
        hessian_inertia(model, (x, y), method="power")
    with pytest.raises(ValueError, match="tol"):
        hessian_inertia(model, (x, y), tol=-1.0)
    with pytest.raises(ValueError, match="neuron"):
        splitting_matrix(model, (x, y), 5)
    with pytest.raises(ValueError, match="model"):
        splitting_matrix(mlp([2, 3, 3, 1], seed=0), (x, y), 0)
    with pytest.raises(ValueError, match="data"):
        gradient_norm(model, (x, y[:3]))
    assert with_params(model, flatten_params(model)) is not model
