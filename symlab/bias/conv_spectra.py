"""Per-frequency spectra of circular convolutions and of convolutional activations.

A stride-1 ``nn.Conv2d`` with circular padding that keeps the image size n_1 × n_2 is a linear map
of R^{c_in n_1 n_2} into R^{c_out n_1 n_2} that commutes with circular shifts. The 2-D DFT over
space block-diagonalizes it (Sedghi, Gupta & Long, "The singular values of convolutional
layers", ICLR 2019): with the kernel K ∈ R^{c_out × c_in × k_1 × k_2}, padding p, dilation δ,

    y[o, u] = Σ_i Σ_a K[o, i, a] x[i, u + δa − p]   (indices mod n)
    ŷ(m) = Ŵ(m) x̂(m),   Ŵ(m)[o, i] = Σ_a K[o, i, a] exp(2πi ⟨m, δa − p⟩ / n),

one c_out × c_in matrix Ŵ(m) per frequency m ∈ Z_{n_1} × Z_{n_2} (componentwise division by n).
The unitary DFT is an isometry, so the n_1 n_2 · min(c_out, c_in) singular values of the layer's
dense matrix are, as a multiset, the union over m of those of Ŵ(m). Cost: c_out c_in n k flops
for Ŵ and n_1 n_2 SVDs of c_out × c_in, against an SVD of the (c_out n²) × (c_in n²) dense matrix.
Grouped convolutions are expanded to their dense (block-diagonal in channels) kernel; kernels
larger than the image wrap around (the sum over a is taken mod n).

Activations A ∈ R^{N × C × n_1 × n_2}: the per-frequency channel covariance of their unitary
spatial DFT, Σ(m) = (1/N) Σ_n (Â_n(m) − μ(m)) (Â_n(m) − μ(m))^H (μ the mean over inputs), whose
square-rooted eigenvalues are the singular values of the centered Â(m)/√N.

CBN rank (Wen & Jacot, "Which frequencies do CNNs need? Emergent bottleneck structure in feature
learning", ICML 2024, arXiv 2402.08010): the paper counts the frequencies and channels a
bottleneck keeps. The rule here (our operational reading; the paper's exact definition is not
reproduced): a singular value s of Ŵ(m) (or of the activations' Σ(m)^{1/2}) survives when
s > ``rtol`` · s_max, s_max the largest over all frequencies of the layer, with
``CBN_RTOL`` = 0.1 by default; the CBN rank is the number of survivors summed over frequencies
and the surviving frequencies are those with at least one survivor. Frequencies m and −m carry
the same singular values for a real kernel (Ŵ(−m) is the complex conjugate of Ŵ(m)).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

CBN_RTOL = 0.1  # a singular value survives when above CBN_RTOL × the layer's largest one


@dataclass
class FrequencySpectrum:
    """Singular values per spatial frequency: ``singular[f]`` (descending, length
    min(c_out, c_in)) belongs to ``frequencies[f]`` = (m_1, m_2); ``route`` says how they were
    computed ("dft", or "dense" with ``frequencies`` None when the layer is not a circulant)."""

    frequencies: Tensor | None
    singular: Tensor
    image_size: tuple[int, int]
    route: str

    def all_values(self) -> Tensor:
        """Every singular value, descending (the multiset of the dense matrix's)."""
        return self.singular.reshape(-1).sort(descending=True).values

    def cbn_rank(self, rtol: float = CBN_RTOL) -> int:
        """#{s > rtol · s_max} over every frequency (module docstring)."""
        return int((self.singular > _threshold(self.singular, rtol)).sum())

    def surviving_frequencies(self, rtol: float = CBN_RTOL) -> list[tuple[int, int]]:
        """The frequencies (m_1, m_2) with at least one singular value above rtol · s_max."""
        if self.frequencies is None:
            raise ValueError(
                "route: the dense route has no frequencies (the layer is not circulant)"
            )
        keep = (self.singular > _threshold(self.singular, rtol)).any(dim=1)
        return [tuple(int(v) for v in m) for m in self.frequencies[keep]]

    def rank_per_frequency(self, rtol: float = CBN_RTOL) -> Tensor:
        """(n_1, n_2) integer map: survivors at each frequency."""
        if self.frequencies is None:
            raise ValueError(
                "route: the dense route has no frequencies (the layer is not circulant)"
            )
        counts = (self.singular > _threshold(self.singular, rtol)).sum(dim=1)
        return counts.reshape(self.image_size)


def _threshold(singular: Tensor, rtol: float) -> float:
    if not 0 < rtol < 1:
        raise ValueError(f"rtol: expected a relative threshold in (0, 1), got {rtol!r}")
    return rtol * float(singular.max()) if singular.numel() else 0.0


def _image_size(image_size) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in size):
        raise ValueError(
            f"image_size: expected a positive integer or a pair of them, got {image_size!r}"
        )
    return size


def _frequency_grid(size: tuple[int, int]) -> Tensor:
    m1, m2 = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
    return torch.stack([m1.reshape(-1), m2.reshape(-1)], dim=1)


def _dense_kernel(conv: nn.Conv2d, dtype: torch.dtype) -> Tensor:
    """The kernel with groups expanded: (c_out, c_in, k_1, k_2), zero off the group blocks."""
    weight = conv.weight.detach().to(dtype)
    if conv.groups == 1:
        return weight
    c_out, per_group, k1, k2 = weight.shape
    full = weight.new_zeros((c_out, per_group * conv.groups, k1, k2))
    out_per_group = c_out // conv.groups
    for g in range(conv.groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        full[rows, g * per_group : (g + 1) * per_group] = weight[rows]
    return full


def circulant_reason(conv: nn.Module, size: tuple[int, int]) -> str | None:
    """Why ``conv`` is not a circulant on n_1 × n_2 images (None when it is)."""
    if not isinstance(conv, nn.Conv2d):
        return f"expected an nn.Conv2d, got {type(conv).__name__}"
    if conv.padding_mode != "circular":
        return f"padding_mode is {conv.padding_mode!r}, not 'circular'"
    if tuple(conv.stride) != (1, 1):
        return f"stride is {tuple(conv.stride)}, not 1"
    if isinstance(conv.padding, str):
        return None if conv.padding == "same" else "padding='valid' changes the image size"
    for axis in range(2):
        out = (
            size[axis] + 2 * conv.padding[axis] - conv.dilation[axis] * (conv.kernel_size[axis] - 1)
        )
        if out != size[axis]:
            return f"the output size along axis {axis} is {out}, not the input's {size[axis]}"
    return None


def frequency_matrices(conv: nn.Conv2d, image_size) -> Tensor:
    """Ŵ(m) for every frequency, (n_1 n_2, c_out, c_in) complex, rows in ``_frequency_grid``
    order (m_1 major). The layer must be circulant (``circulant_reason`` is None)."""
    size = _image_size(image_size)
    reason = circulant_reason(conv, size)
    if reason is not None:
        raise ValueError(f"conv: the DFT route needs a circulant layer ({reason})")
    dtype = torch.float64 if conv.weight.dtype == torch.float64 else torch.float32
    kernel = _dense_kernel(conv, dtype)
    phases = []
    for axis in range(2):
        k, n, delta = conv.kernel_size[axis], size[axis], conv.dilation[axis]
        if isinstance(conv.padding, str):  # 'same': torch pads total δ(k−1), left half floor
            pad = delta * (k - 1) // 2
        else:
            pad = conv.padding[axis]
        shift = (delta * torch.arange(k) - pad) % n  # exact integers before the phase
        m = torch.arange(n)
        angle = 2 * math.pi * ((m[:, None] * shift[None, :]) % n).to(torch.float64) / n
        phases.append(torch.polar(torch.ones_like(angle), angle).to(_complex(dtype)))
    w = torch.einsum("oiab,ma,nb->mnoi", kernel.to(_complex(dtype)), phases[0], phases[1])
    return w.reshape(size[0] * size[1], *w.shape[2:])


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def dense_conv_matrix(conv: nn.Conv2d, image_size) -> Tensor:
    """The layer's linear part as a dense (c_out n_1' n_2', c_in n_1 n_2) matrix (bias left out),
    built by applying the layer itself to the standard basis: the independent reference (c_in n² forward
    columns)."""
    size = _image_size(image_size)
    c_in = conv.in_channels
    dtype = conv.weight.dtype
    basis = torch.eye(c_in * size[0] * size[1], dtype=dtype).reshape(-1, c_in, *size)
    with torch.no_grad():  # the layer minus its bias: conv(x) − conv(0) (an affine map)
        out = conv(basis) - conv(torch.zeros_like(basis[:1]))
    return out.reshape(out.shape[0], -1).T


def conv_frequency_spectra(
    conv: nn.Module, image_size, *, fallback: bool = True
) -> FrequencySpectrum:
    """Singular values of a Conv2d per spatial frequency (module docstring), float64 for a
    float64 layer and float32 otherwise.

    A layer that is not a circulant on these images (padding other than circular, stride > 1,
    size-changing padding) has no per-frequency blocks: with ``fallback`` the dense matrix's
    singular values are returned (route "dense", ``frequencies`` None) with a warning saying so;
    without it a ValueError names the reason.
    """
    size = _image_size(image_size)
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"conv: expected an nn.Conv2d, got {type(conv).__name__}")
    reason = circulant_reason(conv, size)
    if reason is not None:
        if not fallback:
            raise ValueError(f"conv: the DFT route needs a circulant layer ({reason})")
        warnings.warn(
            f"conv: {reason}, so the layer is not block-diagonalized by the DFT; falling back to "
            "the SVD of its dense matrix (no per-frequency spectra)",
            stacklevel=2,
        )
        values = torch.linalg.svdvals(dense_conv_matrix(conv, size))
        return FrequencySpectrum(None, values[:, None], size, "dense")
    singular = torch.linalg.svdvals(frequency_matrices(conv, size))
    return FrequencySpectrum(_frequency_grid(size), singular, size, "dft")


def activation_frequency_spectra(activations: Tensor, *, center: bool = True) -> FrequencySpectrum:
    """Per-frequency channel spectra of activations (N, C, n_1, n_2): the singular values of
    (Â(m) − μ(m)) / √N for every frequency m (square roots of the eigenvalues of the channel
    covariance Σ(m)), with the unitary spatial DFT; ``center`` False skips the mean."""
    if not torch.is_tensor(activations) or activations.dim() != 4 or activations.shape[0] < 1:
        raise ValueError("activations: expected a tensor (N, C, n_1, n_2) with N >= 1")
    a = activations.detach()
    a = a.to(torch.float64 if a.dtype == torch.float64 else torch.float32)
    n, c, n1, n2 = a.shape
    spectrum = torch.fft.fft2(a, norm="ortho")  # (N, C, n1, n2)
    if center:
        spectrum = spectrum - spectrum.mean(dim=0, keepdim=True)
    per_freq = spectrum.permute(2, 3, 0, 1).reshape(n1 * n2, n, c) / math.sqrt(n)
    singular = torch.linalg.svdvals(per_freq)
    return FrequencySpectrum(_frequency_grid((n1, n2)), singular, (n1, n2), "dft")
