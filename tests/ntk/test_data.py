"""Data helpers of the ntk studies: digits split, teacher task, sphere regression task."""

import numpy as np
import pytest
import torch

from symlab.ntk.data import load_digits_split, sphere_regression_task, teacher_task


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_digits_split_is_fixed_stratified_and_standardised(dtype):
    data = load_digits_split(dtype=dtype)
    assert data.x_train.shape == (1200, 64) and data.x_test.shape == (597, 64)
    assert data.x_train.dtype == dtype and data.y_train.dtype == torch.long
    assert data.n_classes == 10
    # standardised with the training statistics: mean 0, std 1 except constant pixels (std 0)
    mean = data.x_train.double().mean(0)
    std = data.x_train.double().std(0, unbiased=False)
    assert float(mean.abs().max()) < 1e-5
    assert torch.all((torch.abs(std - 1) < 1e-5) | (std < 1e-12))
    # stratified: every class is in both parts with about its overall frequency
    train_freq = np.bincount(data.y_train.numpy(), minlength=10) / 1200
    test_freq = np.bincount(data.y_test.numpy(), minlength=10) / 597
    assert np.max(np.abs(train_freq - test_freq)) < 0.01
    again = load_digits_split(dtype=dtype)
    assert torch.equal(again.x_test, data.x_test) and torch.equal(again.y_train, data.y_train)


def test_teacher_task_is_deterministic_and_learnable_labels():
    a = teacher_task(200, 100, seed=3)
    b = teacher_task(200, 100, seed=3)
    c = teacher_task(200, 100, seed=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert a.x_train.shape == (200, 64) and a.y_test.shape == (100,)
    assert int(a.y_train.min()) >= 0 and int(a.y_train.max()) < a.n_classes
    # labels are a deterministic function of x: recompute them from the documented teacher
    rng = np.random.default_rng(3)
    bw, aw = rng.standard_normal((8, 64)), rng.standard_normal((4, 8))
    x = np.concatenate([a.x_train.numpy(), a.x_test.numpy()])
    labels = np.argmax(np.tanh(x @ bw.T / 8.0) @ aw.T, axis=1)
    assert np.array_equal(labels, np.concatenate([a.y_train.numpy(), a.y_test.numpy()]))
    assert len(np.unique(labels)) >= 3  # not a degenerate one-class task


def test_sphere_task_on_unit_sphere():
    x, y = sphere_regression_task(50, 5, seed=1, dtype=torch.float32)
    assert x.shape == (50, 5) and y.shape == (50, 1) and x.dtype == torch.float32
    assert torch.allclose(x.norm(dim=1), torch.ones(50), atol=1e-6)
    assert float(y.std()) > 0.1


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: load_digits_split(n_test=5), "n_test"),
        (lambda: load_digits_split(dtype=torch.int64), "dtype"),
        (lambda: teacher_task(0, 10), "n_train"),
        (lambda: teacher_task(10, 10, n_classes=1), "n_classes"),
        (lambda: sphere_regression_task(10, 1), "dim"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
