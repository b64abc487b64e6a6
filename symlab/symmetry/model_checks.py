"""Argument checks of the functional-dimension functions: one sentence naming the argument.

A NaN or infinite weight makes every Jacobian row non-finite, and the scaled Jacobian then drops
every row (an empty matrix, formerly an IndexError deep in the rank code); a recurrent module
(``nn.LSTM``) or any module whose forward returns a tuple has no single output to differentiate.
These are caught here, before any work, as ``TypeError`` (wrong kind of object) or ``ValueError``
(right kind, unusable value).
"""

from __future__ import annotations

import torch
from torch import nn


def check_model(model: object) -> nn.Module:
    """``model`` if it is an ``nn.Module`` without recurrent layers and with finite parameters."""
    if not isinstance(model, nn.Module):
        got = "None" if model is None else type(model).__name__
        raise TypeError(f"model: expected a torch.nn.Module (an MLP or any network), got {got}")
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            raise TypeError(
                f"model: expected a feed-forward module whose forward returns one tensor, got "
                f"{type(module).__name__} (a recurrent module returns a tuple)"
            )
    for name, parameter in model.named_parameters():
        finite = torch.isfinite(parameter.detach())
        if not bool(finite.all()):
            bad = parameter.detach()[~finite][0].item()
            raise ValueError(
                f"model: expected finite weights, got {bad} in parameter {name!r} "
                f"({int((~finite).sum())} non-finite entries)"
            )
    return model


def check_finite_inputs(inputs: torch.Tensor) -> torch.Tensor:
    """``inputs`` (a floating-point tensor) if every entry is finite."""
    finite = torch.isfinite(inputs)
    if not bool(finite.all()):
        index = tuple(int(i) for i in (~finite).nonzero()[0])
        raise ValueError(
            f"inputs: expected finite values, got {inputs[index].item()} at index {index} "
            f"({int((~finite).sum())} non-finite entries)"
        )
    return inputs


def check_single_output(model: nn.Module, inputs: torch.Tensor) -> None:
    """TypeError unless ``model(inputs[:1])`` is one tensor (a generic module's forward)."""
    with torch.no_grad():
        output = model(inputs[:1])
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"model: expected a forward that returns one tensor, got {type(output).__name__}"
        )
