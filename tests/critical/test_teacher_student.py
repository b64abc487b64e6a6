"""classify / reduced_gradient_norm respect the tanh sign flip (w, a) -> (-w, -a), and only it."""

import pytest
import torch

from symlab.critical.criticality import gradient_norm
from symlab.critical.teacher_student import (
    classify,
    make_teacher,
    reduced_gradient_norm,
    two_layer,
)


def _data(teacher, n=150, d=2, seed=0):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x, teacher(x).detach()


def _student_with_a_flipped_duplicate(activation):
    """Neurons [w1, w2, -w1], outputs [2 a1, a2, a1]: the teacher exactly when sigma is odd."""
    teacher = make_teacher(2, 2, activation, seed=3)
    w, a = teacher[0].weight.detach(), teacher[2].weight.detach()[0]
    student = two_layer(torch.cat([w, -w[:1]]), torch.stack([2 * a[0], a[1], a[0]]), activation)
    return teacher, student


def test_tanh_flipped_duplicate_is_a_global_minimum():
    teacher, student = _student_with_a_flipped_duplicate("tanh")
    x, y = _data(teacher)
    assert float((student(x).detach() - y).abs().max()) <= 1e-14  # the same function
    out = classify(student, teacher, "tanh", zero_loss=True, converged=True, negative=0, tol=1e-6)
    assert out["category"] == "global minimum"
    assert out["reduced_width"] == 2 and out["assignment"] == [1, 2, 1]


@pytest.mark.parametrize("activation", ["g", "softplus"])
def test_activations_that_are_not_odd_keep_the_sign(activation):
    """Control: for g and softplus the flipped neuron is a different function and a new group."""
    teacher, student = _student_with_a_flipped_duplicate(activation)
    x, y = _data(teacher)
    assert float((student(x).detach() - y).abs().max()) > 1e-3
    out = classify(
        student, teacher, activation, zero_loss=False, converged=True, negative=1, tol=1e-6
    )
    assert out["reduced_width"] == 3 and out["assignment"] == [1, 2, -1]
    assert out["category"] == "other saddle"


def test_tanh_flipped_zero_sum_pair_is_zero_output():
    """c tanh(u.x) + c tanh(-u.x) = 0: a zero-sum group of two, label 0, for free u."""
    teacher = make_teacher(2, 2, "tanh", seed=5)
    w, a = teacher[0].weight.detach(), teacher[2].weight.detach()[0]
    u = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    c = torch.tensor([0.8], dtype=torch.float64)
    student = two_layer(torch.cat([w, u, -u]), torch.cat([a, c, c]), "tanh")
    x, y = _data(teacher)
    assert float((student(x).detach() - y).abs().max()) <= 1e-14
    out = classify(student, teacher, "tanh", zero_loss=True, converged=True, negative=0, tol=1e-6)
    assert out["category"] == "global minimum" and out["assignment"] == [1, 2, 0, 0]
    assert out["zero_sum_groups"] == 1 and out["reduced_width"] == 2


def test_tanh_flipped_split_merges_to_the_narrow_net():
    """A width-2 net split with the copy flipped, [w1, w2, -w1] and [0.3 a1, a2, -0.7 a1]: the
    reduced net is the narrow one, so its gradient equals the narrow net's gradient, and the
    point is symmetry-induced with reduced width 2."""
    teacher = make_teacher(2, 3, "tanh", seed=1)
    data = _data(teacher)
    g = torch.Generator().manual_seed(3)
    w = torch.randn(2, 2, generator=g, dtype=torch.float64)
    a = torch.tensor([0.5, -0.5], dtype=torch.float64)
    narrow = two_layer(w, a, "tanh")
    wide = two_layer(torch.cat([w, -w[:1]]), torch.cat([0.3 * a[:1], a[1:], -0.7 * a[:1]]), "tanh")
    x, _ = data
    assert float((wide(x) - narrow(x)).detach().abs().max()) <= 1e-15
    expected = gradient_norm(narrow, data)
    assert abs(reduced_gradient_norm(wide, "tanh", data, 1e-6) - expected) <= 1e-14 * expected
    out = classify(wide, teacher, "tanh", zero_loss=False, converged=True, negative=1, tol=1e-6)
    assert out["reduced_width"] == 2 and out["category"] == "symmetry-induced saddle"
    # control: for g (not odd) the flipped copy is another neuron, nothing merges
    g_wide = two_layer(torch.cat([w, -w[:1]]), torch.cat([0.3 * a[:1], a[1:], -0.7 * a[:1]]), "g")
    assert (
        classify(g_wide, teacher, "g", zero_loss=False, converged=True, negative=1, tol=1e-6)[
            "reduced_width"
        ]
        == 3
    )


def test_sign_groups_brute_force():
    """Groups and signs against explicit pairwise checks on a random mix of +-copies."""
    from symlab.critical.teacher_student import _groups

    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 3, generator=g, dtype=torch.float64)
    choice = torch.randint(0, 4, (12,), generator=g)
    flip = torch.where(torch.rand(12, generator=g) < 0.5, -1.0, 1.0).double()
    w = flip[:, None] * base[choice] + 1e-9 * torch.randn(12, 3, generator=g, dtype=torch.float64)
    groups, signs = _groups(w, 1e-6, odd=True)
    assert sorted(len(group) for group in groups) == sorted(
        int((choice == i).sum()) for i in range(4) if (choice == i).any()
    )
    for group in groups:
        assert len({int(choice[j]) for j in group}) == 1
        for j in group:
            assert signs[j] == int(flip[j] * flip[group[0]])
            assert float((w[j] - signs[j] * w[group[0]]).abs().max()) <= 1e-8
    plain, plain_signs = _groups(w, 1e-6, odd=False)
    assert set(plain_signs) == {1}
    assert len(plain) == len({(int(c), float(f)) for c, f in zip(choice, flip, strict=True)})
