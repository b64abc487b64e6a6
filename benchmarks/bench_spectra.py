"""symlab.bias.layer_spectra against the floor of its work, on a deep MLP.

Run: .venv/bin/python benchmarks/bench_spectra.py [--depth 25] [--width 200] [--points 2000]
     [--repeats 3] [--dtype float32]

A ReLU MLP with ``--depth`` weight matrices of width ``--width`` (20 inputs and outputs, He init),
``--points`` Gaussian inputs, one thread:

- floor: the forward pass by hand, keeping every layer's output (the L Linear outputs), and one
  ``torch.linalg.svdvals`` per layer on that output, in the model's dtype: the least work that
  gives one spectrum per layer;
- layer_spectra, default: every leaf (Linear and ReLU: 2L − 1 outputs), each with its raw and
  centered spectrum from one float64 Gram and two eigensolves, plus the L weight SVDs;
- layer_spectra, ``leaves=(nn.Linear,)``: the floor's L outputs (plus the weights' spectra and the
  centered spectra the floor does not give);
- layer_spectra, ``leaves=(nn.ReLU,)``: the L − 1 hidden representations only.

Spectra of the floor and of ``leaves=(nn.Linear,)`` are compared (relative to s_max; the Gram
route is accurate to ~1e-8 s_max). Times are the minimum of ``--repeats`` runs in one process.
"""

from __future__ import annotations

import argparse
import platform

import torch
from timing import best
from torch import nn

from symlab.bias import layer_spectra
from symlab.nets import mlp


def floor(model: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Forward by hand, one svdvals per Linear output."""
    values = []
    with torch.no_grad():
        for module in model:
            x = module(x)
            if isinstance(module, nn.Linear):
                values.append(torch.linalg.svdvals(x))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=25)
    parser.add_argument("--width", type=int, default=200)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    model = mlp([20] + [args.width] * (args.depth - 1) + [20], seed=0, dtype=dtype)
    x = torch.randn(args.points, 20, generator=torch.Generator().manual_seed(0), dtype=dtype)
    print(
        f"MLP depth {args.depth}, width {args.width}, N = {args.points}, {args.dtype}, 1 thread; "
        f"torch {torch.__version__}, {platform.machine()}, best of {args.repeats}"
    )
    t_floor, reference = best(lambda: floor(model, x), args.repeats)
    cases = {
        "all leaves (default)": None,
        "leaves=(nn.Linear,)": (nn.Linear,),
        "leaves=(nn.ReLU,)": (nn.ReLU,),
    }
    print(f"{'route':<28}{'seconds':>10}{'vs floor':>10}{'outputs':>9}")
    print(f"{'floor (forward + svdvals)':<28}{t_floor:>10.3f}{1.0:>9.2f}x{len(reference):>9}")
    for name, leaves in cases.items():
        seconds, spectra = best(
            lambda leaves=leaves: layer_spectra(model, x, leaves=leaves), args.repeats
        )
        print(f"{name:<28}{seconds:>10.3f}{seconds / t_floor:>9.2f}x{len(spectra):>9}")
        if leaves == (nn.Linear,):
            error = max(
                float((s.representation - r.double()).abs().max() / r.double().max())
                for s, r in zip(spectra, reference)
            )
            print(f"{'':<28}max |s - s_floor| / s_max = {error:.1e}")


if __name__ == "__main__":
    main()
