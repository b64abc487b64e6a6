"""Small data sets for tangent-kernel studies: scikit-learn's digits and a synthetic teacher task.

Both return flat inputs of dimension 64 (digits are 8x8 images; the teacher task draws 64-dim
Gaussian inputs), so the same MLP and the same small CNN (which reshapes to 1x8x8) apply to both.
Used by the ``ntk-dynamics`` study (Fort et al. 2020, "Deep learning versus kernel learning").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DIGITS_SIZE = 1797  # images in sklearn.datasets.load_digits


@dataclass(frozen=True)
class ClassificationData:
    """A fixed train/test split: inputs (N, d) and integer labels (N,) in 0..n_classes-1."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")


def load_digits_split(
    n_test: int = 597, *, split_seed: int = 0, dtype: torch.dtype = torch.float64
) -> ClassificationData:
    """scikit-learn's digits (1797 8x8 images, 10 classes), a fixed stratified split, standardised.

    The split is ``train_test_split(..., test_size=n_test, stratify=labels,
    random_state=split_seed)``; every pixel is standardised with the training set's mean and
    standard deviation (pixels constant on the training set are only centred). No download: the
    data ship inside scikit-learn. Cost: O(1797 * 64).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    _check_dtype(dtype)
    if not 10 <= int(n_test) <= DIGITS_SIZE - 10:
        raise ValueError(f"n_test: expected an integer in [10, {DIGITS_SIZE - 10}], got {n_test}")
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data,
        digits.target,
        test_size=int(n_test),
        stratify=digits.target,
        random_state=int(split_seed),
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std < 1e-12] = 1.0
    return ClassificationData(
        x_train=torch.as_tensor((x_train - mean) / std, dtype=dtype),
        y_train=torch.as_tensor(y_train, dtype=torch.long),
        x_test=torch.as_tensor((x_test - mean) / std, dtype=dtype),
        y_test=torch.as_tensor(y_test, dtype=torch.long),
        n_classes=10,
    )


def teacher_task(
    n_train: int = 1200,
    n_test: int = 600,
    *,
    dim: int = 64,
    n_classes: int = 4,
    teacher_width: int = 8,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> ClassificationData:
    """A synthetic classification task: Gaussian inputs labelled by a random two-layer teacher.

    x ~ N(0, I_dim); the teacher is g(x) = A tanh(B x / sqrt(dim)) with B (teacher_width x dim)
    and A (n_classes x teacher_width) standard Gaussian; the label is argmax_k g_k(x). A narrow
    teacher makes the label a low-frequency function of a few directions of x, learnable from a
    thousand samples. Deterministic in ``seed``; cost O((n_train + n_test) * dim * teacher_width).
    """
    _check_dtype(dtype)
    for name, value, low in (
        ("n_train", n_train, 1),
        ("n_test", n_test, 1),
        ("dim", dim, 1),
        ("n_classes", n_classes, 2),
        ("teacher_width", teacher_width, 1),
    ):
        if int(value) != value or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value}")
    rng = np.random.default_rng(int(seed))
    b = rng.standard_normal((teacher_width, dim))
    a = rng.standard_normal((n_classes, teacher_width))
    x = rng.standard_normal((n_train + n_test, dim))
    labels = np.argmax(np.tanh(x @ b.T / np.sqrt(dim)) @ a.T, axis=1)
    x_t = torch.as_tensor(x, dtype=dtype)
    y_t = torch.as_tensor(labels, dtype=torch.long)
    return ClassificationData(
        x_train=x_t[:n_train],
        y_train=y_t[:n_train],
        x_test=x_t[n_train:],
        y_test=y_t[n_train:],
        n_classes=int(n_classes),
    )


def sphere_regression_task(
    n_train: int, dim: int, *, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs uniform on the unit sphere S^{dim-1} and smooth targets y = sin(2 u.x) + (v.x)^2 - 1/dim.

    u, v are fixed unit vectors drawn from ``seed``; the targets are O(1) and roughly centred.
    Returns x (n_train, dim) and y (n_train, 1). Used for the optimizer study in the kernel regime.
    """
    _check_dtype(dtype)
    if int(n_train) != n_train or n_train < 1:
        raise ValueError(f"n_train: expected a positive integer, got {n_train}")
    if int(dim) != dim or dim < 2:
        raise ValueError(f"dim: expected an integer >= 2, got {dim}")
    rng = np.random.default_rng(int(seed))
    x = rng.standard_normal((n_train, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    u, v = rng.standard_normal((2, dim))
    u /= np.linalg.norm(u)
    v /= np.linalg.norm(v)
    y = np.sin(2.0 * x @ u) + (x @ v) ** 2 - 1.0 / dim
    return torch.as_tensor(x, dtype=dtype), torch.as_tensor(y[:, None], dtype=dtype)
