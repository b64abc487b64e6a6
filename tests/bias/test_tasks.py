"""Tasks of known bottleneck rank: rebuilt by hand from the documented teachers, normalized on the
training set, deterministic in the seed."""

import pytest
import torch

from symlab.bias.tasks import TEACHER_BIAS_STD, composite_teacher_task, latent_bottleneck_task
from symlab.nets import mlp


def _standardize(x, y, n):
    x = (x - x[:n].mean(0)) / x[:n].std(0)
    y = y - y[:n].mean(0)
    return x, y / y[:n].square().sum(1).mean().sqrt()


def test_latent_task_is_h_of_the_first_k_latents_and_normalized():
    task = latent_bottleneck_task(50, 30, seed=4, latent=5, rank=2, d_in=7, d_out=6, hidden=9)
    g = mlp([5, 9, 7], bias_std=TEACHER_BIAS_STD, seed=13)
    h = mlp([2, 9, 6], bias_std=TEACHER_BIAS_STD, seed=14)
    z = torch.randn(80, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        x, y = _standardize(g(z), h(z[:, :2]), 50)
    torch.testing.assert_close(torch.cat([task.x_train, task.x_test]), x)
    torch.testing.assert_close(torch.cat([task.y_train, task.y_test]), y)
    assert task.rank == 2 and task.train[0].shape == (50, 7) and task.test[1].shape == (30, 6)
    assert float(task.y_train.square().sum(1).mean()) == pytest.approx(1.0)
    torch.testing.assert_close(task.x_train.mean(0), torch.zeros(7, dtype=torch.float64))


def test_composite_teacher_factors_through_k_dimensions():
    task = composite_teacher_task(40, 10, seed=1, d_in=6, rank=3, d_out=5, hidden=8)
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g1 = mlp([6, 8, 3], bias_std=TEACHER_BIAS_STD, seed=4)
    g2 = mlp([3, 8, 5], bias_std=TEACHER_BIAS_STD, seed=5)
    with torch.no_grad():
        ref_x, ref_y = _standardize(x, g2(g1(x)), 40)
    torch.testing.assert_close(task.x_train, ref_x[:40])
    torch.testing.assert_close(task.y_test, ref_y[40:])
    # the teacher's Jacobian has rank <= k = 3 at every input (it factors through R^3)
    jac = torch.func.vmap(torch.func.jacrev(lambda v: g2(g1(v))))(x)
    ranks = torch.linalg.matrix_rank(jac)
    assert int(ranks.max()) <= 3 and int(ranks.max()) == 3


def test_seeds_and_bad_input():
    a = latent_bottleneck_task(10, 5, seed=0)
    b = latent_bottleneck_task(10, 5, seed=0)
    c = latent_bottleneck_task(10, 5, seed=1)
    torch.testing.assert_close(a.y_train, b.y_train)
    assert not torch.allclose(a.y_train, c.y_train)
    with pytest.raises(ValueError, match="rank: expected at most latent = 8"):
        latent_bottleneck_task(10, 5, rank=9)
    with pytest.raises(ValueError, match="n_train: expected at least 2 points"):
        composite_teacher_task(1, 5)
    with pytest.raises(ValueError, match="hidden: expected a positive integer"):
        composite_teacher_task(10, 5, hidden=0)
