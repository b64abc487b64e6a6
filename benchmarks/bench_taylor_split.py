"""Taylor split (symlab.ntk.taylor_split) against one forward-and-backward pass, and T₂ against a
dense Hessian-vector-product reference on a small net.

Issue goal: T₁ + T₂ (one nested jvp) within 4x of one forward + backward over the batch, on the MLP
64 -> 512 -> 512 -> 512 -> 10 (ReLU) at N = 128. Run: ``PYTHONPATH=. python benchmarks/bench_taylor_split.py``.
"""

from __future__ import annotations

import platform

import torch
from timing import best
from torch import nn

from symlab.ntk import taylor_split, trainable_state
from symlab.ntk.taylor_expansion import nested_jvp_terms, taylor_terms


def mlp(widths, dtype):
    layers = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).to(dtype)


def hvp_reference(net, p0, pt, x):
    """½ Δθᵀ ∇²f_{n,k} Δθ for every output entry, by autograd Hessian-vector products (dense)."""
    names = list(p0)
    direction = [pt[n] - p0[n] for n in names]

    def f(*flat):
        return torch.func.functional_call(net, dict(zip(names, flat, strict=True)), (x,)).reshape(
            -1
        )

    out = []
    for i in range(f(*[p0[n] for n in names]).numel()):
        _, hv = torch.autograd.functional.hvp(
            lambda *p, i=i: f(*p)[i], tuple(p0[n] for n in names), tuple(direction)
        )
        out.append(0.5 * sum(float((h * d).sum()) for h, d in zip(hv, direction, strict=True)))
    return torch.tensor(out, dtype=torch.float64)


def main() -> None:
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread")
    # correctness: a small smooth net, T2 against dense Hessian-vector products
    torch.manual_seed(0)
    small = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    small = small.double()
    xs = torch.randn(5, 3, dtype=torch.float64)
    p0 = trainable_state(small)
    pt = {n: p + 0.3 * torch.randn_like(p) for n, p in p0.items()}
    _, _, t2 = taylor_terms(small, p0, pt, xs)
    ref = hvp_reference(small, p0, pt, xs)
    print(
        f"T2 vs dense HVP reference (small tanh net): max |diff| = {float((t2.reshape(-1) - ref).abs().max()):.2e}"
    )

    for dtype in (torch.float32, torch.float64):
        measure(dtype)


def measure(dtype) -> None:
    if True:
        net = mlp([64, 512, 512, 512, 10], dtype)
        x = torch.randn(128, 64, dtype=dtype)
        y = torch.randn(128, 10, dtype=dtype)
        p0 = trainable_state(net)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01 * torch.randn_like(p))
        pt = trainable_state(net)

        def fwd_bwd():
            net.zero_grad(set_to_none=True)
            loss = ((net(x) - y) ** 2).mean()
            loss.backward()

        def terms():
            return taylor_terms(net, p0, pt, x)

        def generic():
            return nested_jvp_terms(net, p0, {n: pt[n] - p0[n] for n in p0}, x)

        def full():
            return taylor_split(net, p0, x, pt)

        for _ in range(2):
            fwd_bwd(), terms(), generic(), full()
        times = {"fb": [], "jet": [], "generic": [], "full": []}
        for _ in range(15):  # interleaved, best of 15
            for key, fn in (("fb", fwd_bwd), ("jet", terms), ("generic", generic), ("full", full)):
                times[key].append(best(fn, 1)[0])
        t = {k: min(v) for k, v in times.items()}
        print(
            f"{str(dtype):14s} forward+backward {t['fb'] * 1e3:6.2f} ms | T1+T2 jet route "
            f"{t['jet'] * 1e3:6.2f} ms = {t['jet'] / t['fb']:4.2f}x | generic jvp-of-jvp "
            f"{t['generic'] * 1e3:6.2f} ms = {t['generic'] / t['fb']:4.2f}x | whole split (+ pseudo "
            f"network, flips) {t['full'] * 1e3:6.2f} ms = {t['full'] / t['fb']:4.2f}x"
        )


if __name__ == "__main__":
    main()
