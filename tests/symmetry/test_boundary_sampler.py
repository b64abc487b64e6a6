"""The region-seeking boundary sampler: shapes, exact crossings, and the rank it reaches."""

import copy

import pytest
import torch
from torch import nn

from symlab.nets import mlp
from symlab.symmetry import fd_bound, functional_dimension
from symlab.symmetry.boundary_sampler import (
    boundary,
    boundary_pairs,
    hidden_preactivations,
    neuron_crossings,
    neuron_preactivations,
)
from symlab.symmetry.samplers import get_sampler, multiscale


def reference_preactivations(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Hidden pre-activations from the model's own modules (forward through nn.Sequential)."""
    out, a = [], x.to(torch.float64)
    model = copy.deepcopy(model).to(torch.float64)
    modules = list(model.children())
    for index, module in enumerate(modules):
        a = module(a)
        if isinstance(module, nn.Linear) and index < len(modules) - 1:
            out.append(a)
    return torch.cat(out, dim=1).detach()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_points_are_finite_shaped_and_seeded(dtype):
    model = mlp([3, 5, 5, 5, 1], bias_std=0.1, seed=0, dtype=dtype)
    draw = get_sampler("boundary", model)
    a = draw(101, 3, torch.Generator().manual_seed(4), dtype)
    b = draw(101, 3, torch.Generator().manual_seed(4), dtype)
    c = draw(101, 3, torch.Generator().manual_seed(5), dtype)
    assert a.shape == (101, 3) and a.dtype == dtype and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert draw(0, 3, torch.Generator(), dtype).shape == (0, 3)
    for n in (1, 2, 3):  # one line: a mode with no lines must not break
        assert draw(n, 3, torch.Generator().manual_seed(n), dtype).shape == (n, 3)
    # one hidden layer (no co-activation lines) and no hidden layer (multiscale points)
    shallow = mlp([3, 4, 1], seed=0)
    assert torch.isfinite(boundary(shallow, 9, torch.Generator().manual_seed(0))).all()
    # no hidden layer: multiscale points
    linear = mlp([3, 2], seed=0)
    assert boundary(linear, 7, torch.Generator().manual_seed(0)).shape == (7, 3)


def test_hidden_preactivations_match_the_modules():
    model = mlp([4, 6, 5, 2], bias_std=0.3, seed=1, dtype=torch.float32)
    x = multiscale(50, 4, torch.Generator().manual_seed(0))
    expected = reference_preactivations(model, x)
    assert torch.allclose(hidden_preactivations(model, x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("grid", [False, True])
def test_one_neuron_per_point_forward_matches_the_modules(grid, monkeypatch):
    # the layer-truncated pass (points ordered by their neuron's layer, by blocks of 7 points
    # here so that later blocks' offsets are exercised) against every hidden pre-activation
    # from the model's modules, gathered at each point's neuron; gradients against the full pass
    import symlab.symmetry.hidden_forward as hidden_forward

    monkeypatch.setattr(hidden_forward, "_FORWARD_ROWS", 7)
    model = mlp([3, 4, 7, 5, 2], bias_std=0.3, seed=3, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    shape = (40, 6, 3) if grid else (40, 3)
    x = multiscale(shape[0] * (6 if grid else 1), 3, generator).view(shape).requires_grad_(True)
    neuron = torch.randint(16, (40,), generator=generator)
    neuron[:3] = torch.tensor([0, 15, 4])  # first, last, and a first neuron of layer 2
    values = neuron_preactivations(model, x, neuron)
    every = reference_preactivations(model, x.detach().reshape(-1, 3)).view(*shape[:-1], 16)
    index = neuron.view(-1, *([1] * (len(shape) - 2))).expand(*shape[:-1])
    expected = every.gather(-1, index[..., None])[..., 0]
    assert values.shape == shape[:-1]
    assert torch.allclose(values, expected, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(values.sum(), x)
    full = hidden_preactivations(model, x.reshape(-1, 3)).view(*shape[:-1], 16)
    (full_grad,) = torch.autograd.grad(full.gather(-1, index[..., None]).sum(), x)
    assert torch.allclose(grad, full_grad, rtol=1e-12, atol=1e-12)
    # no points: an empty result; bad neurons or inputs: one sentence naming the argument
    empty = neuron_preactivations(model, x[:0].detach(), neuron[:0])
    assert empty.shape == (0, *shape[1:-1])
    assert boundary_pairs(model, 0, torch.Generator().manual_seed(0)).minus.shape == (0, 3)
    with pytest.raises(ValueError, match="^neuron: "):
        neuron_preactivations(model, x, neuron.clamp_max(15) + 1)
    with pytest.raises(ValueError, match="^neuron: "):
        neuron_preactivations(model, x, neuron.double())
    with pytest.raises(ValueError, match="^inputs: "):
        neuron_preactivations(model, x[..., :2], neuron)


def test_crossings_are_roots_of_the_chosen_neuron():
    model = mlp([3, 6, 6, 6, 1], bias_std=0.1, seed=2)
    g = torch.Generator().manual_seed(0)
    base = multiscale(400, 3, g)
    direction = torch.randn(400, 3, generator=g, dtype=torch.float64)
    neuron = torch.randint(18, (400,), generator=g)
    cross = neuron_crossings(model, base, direction, neuron, g)
    assert cross.found.float().mean() > 0.3  # most lines cross most bent hyperplanes

    def z(t):
        x = base + t[:, None] * direction
        return reference_preactivations(model, x).gather(1, neuron[:, None]).squeeze(1)

    found = cross.found
    scale = 1 + cross.points.norm(dim=1) * direction.norm(dim=1)
    assert (z(cross.t)[found].abs() / scale[found]).max() < 1e-12
    # the final bracket has opposite signs at its ends and is tiny
    # (an end within rounding of 0 may read with either sign in another forward pass)
    low, high = z(cross.bracket[:, 0]), z(cross.bracket[:, 1])
    at_zero = (low.abs() <= 1e-12 * scale) | (high.abs() <= 1e-12 * scale)
    assert (((low > 0) != (high > 0)) | at_zero)[found].all()
    assert ((low > 0) != (high > 0))[found].float().mean() > 0.5
    width = (cross.bracket[:, 1] - cross.bracket[:, 0]).abs()
    assert (width[found] < 1e-10).all()


@pytest.mark.parametrize("widths", [[3, 6, 6, 1], [10, 10, 10, 10, 1], [2, 4, 4, 4, 1]])
def test_emitted_pairs_straddle_the_bent_hyperplane(widths):
    model = mlp(widths, bias_std=0.1, seed=0)
    pairs = boundary_pairs(model, 600, torch.Generator().manual_seed(1))
    found = pairs.crossings.found
    assert found.float().mean() > 0.3
    minus = reference_preactivations(model, pairs.minus).gather(1, pairs.neuron[:, None])
    plus = reference_preactivations(model, pairs.plus).gather(1, pairs.neuron[:, None])
    scale = 1 + pairs.minus.norm(dim=1, keepdim=True)  # rounding of z at |x|
    at_zero = (minus.abs() <= 1e-12 * scale) | (plus.abs() <= 1e-12 * scale)
    assert (((minus > 0) != (plus > 0)) | at_zero)[found].all()
    assert ((minus > 0) != (plus > 0))[found].float().mean() > 0.95
    # both modes are used: nearest crossings from co-activation lines and random ones
    n_pair = 300 if len(widths) > 3 else 0
    assert pairs.neuron.shape == (600,) and int(pairs.neuron.max()) < sum(widths[1:-1])
    if n_pair:
        # co-activation lines aim at the neuron of the layer after the one made active
        assert int(pairs.neuron[-n_pair:].min()) >= widths[1]


@pytest.mark.parametrize(
    ("widths", "seed"),
    [([2, 4, 4, 1], 1), ([2, 3, 3, 3, 1], 2), ([3, 4, 4, 4, 1], 3), ([3, 4, 4, 4, 1], 0)],
)
def test_rank_on_boundary_points_reaches_a_dense_multiscale_reference(widths, seed):
    model = mlp(widths, bias_std=0.1, seed=seed)
    reference = functional_dimension(model, multiscale(50000, widths[0], torch.Generator()))
    points = boundary(model, 4000, torch.Generator().manual_seed(seed))
    found = functional_dimension(model, points)
    assert found.rank <= fd_bound(widths)
    assert found.rank >= reference.rank


def test_adaptive_boundary_reaches_the_bound_with_fewer_points():
    # measured: (3, 5, 5, 1) seeds 0-3 at max_points 500 -> boundary at the bound with 69-138
    # points on all four; gaussian and multiscale still below it on seeds 0 and 1
    widths = [3, 5, 5, 1]
    below = 0
    for seed in range(4):
        model = mlp(widths, bias_std=0.1, seed=seed)
        fd = functional_dimension(model, sampler="boundary", seed=seed, max_points=500)
        assert fd.saturated == "bound" and fd.rank == fd_bound(widths)
        again = functional_dimension(model, sampler="boundary", seed=seed, max_points=500)
        assert torch.equal(fd.points, again.points) and again.rank == fd.rank
        for name in ("gaussian", "multiscale"):
            other = functional_dimension(model, sampler=name, seed=seed, max_points=500)
            assert fd.n_points <= other.n_points and other.rank <= fd.rank
            below += other.rank < fd.rank
    assert below >= 3


def test_model_aware_sampler_needs_an_mlp():
    with pytest.raises(ValueError, match="model"):
        get_sampler("boundary")
    conv = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match="model"):
        get_sampler("boundary", conv)
    with pytest.raises(ValueError, match="model"):
        boundary(conv, 10, torch.Generator())
    model = mlp([3, 4, 1], seed=0)
    with pytest.raises(ValueError, match="n_points"):
        boundary(model, -1, torch.Generator())
    with pytest.raises(ValueError, match="n0"):
        get_sampler("boundary", model)(5, 2, torch.Generator(), torch.float64)
    with pytest.raises(ValueError, match="sampler"):
        get_sampler("boundry", model)


def test_fdim_cli_accepts_the_boundary_sampler():
    from typer.testing import CliRunner

    from symlab.cli import app

    done = CliRunner().invoke(
        app, ["fdim", "3,5,5,1", "--sampler", "boundary", "--max-points", "500"]
    )
    assert done.exit_code == 0, done.output
    bound = fd_bound((3, 5, 5, 1))  # 56 parameters - 10 hidden neurons = 46
    row = next(line for line in done.output.splitlines() if line.strip("│ ").startswith("0 "))
    cells = [cell.strip() for cell in row.strip("│").split("│")][:5]
    seed, rank, upper, row_bound, deficit = cells
    assert (seed, int(rank), int(row_bound), int(deficit)) == ("0", bound, bound, 0)
    assert int(upper) == bound  # rank = upper: proven
    bad = CliRunner().invoke(app, ["fdim", "3,5,5,1", "--sampler", "bondary"])
    assert bad.exit_code != 0 and "boundary" in str(bad.exception)  # the Fail message


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_a_hidden_layer_without_neurons_is_refused():
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 0), torch.nn.ReLU(),
        torch.nn.Linear(0, 1),
    )  # fmt: skip
    with pytest.raises(ValueError, match="model: expected every hidden layer"):
        boundary_pairs(model, 10, torch.Generator().manual_seed(0))


def test_secant_steps_shrink_the_bracket_as_bisection_does_in_fewer_passes(monkeypatch):
    # z_h is piecewise linear along a line: the secant steps close most brackets in a few
    # passes; the result is as tight as 48 halvings and the same lines are found
    import symlab.symmetry.boundary_sampler as sampler

    model = mlp([4, 8, 8, 8, 1], bias_std=0.1, seed=3)
    g = torch.Generator().manual_seed(1)
    base = multiscale(500, 4, g)
    direction = torch.randn(500, 4, generator=g, dtype=torch.float64)
    neuron = torch.randint(24, (500,), generator=g)
    evaluated = []  # points per forward pass (every pass goes through a plan)
    plan = sampler._OneNeuronPass.plan

    def counted(forward, which, shape):
        one_neuron = plan(forward, which, shape)
        return lambda x: (evaluated.append(x[..., 0].numel()), one_neuron(x))[1]

    monkeypatch.setattr(sampler._OneNeuronPass, "plan", counted)
    fast = neuron_crossings(model, base, direction, neuron, torch.Generator().manual_seed(2))
    grid_points = 500 * (2 * sampler.GRID_POINTS + 1)
    per_line = (sum(evaluated) - grid_points) / int(fast.found.sum())
    monkeypatch.setattr(sampler, "SECANT_STEPS", 0)  # bisection only, as before
    slow = neuron_crossings(model, base, direction, neuron, torch.Generator().manual_seed(2))
    assert torch.equal(fast.found, slow.found)
    assert per_line < 12  # 6.4 here, against 49 passes per line by bisection
    grid_width = (slow.bracket[:, 1] - slow.bracket[:, 0]).abs() * 2.0**sampler.BISECTION_STEPS
    width = (fast.bracket[:, 1] - fast.bracket[:, 0]).abs()
    assert bool((width[fast.found] <= grid_width[fast.found] * 2.0**-48 * (1 + 1e-9)).all())
