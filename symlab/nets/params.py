"""Flat parameter vectors <-> models (order: the model's ``named_parameters``, row-major)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def flatten_params(model: nn.Module) -> torch.Tensor:
    """theta = concat(p.reshape(-1) for p in model.parameters()), a detached copy."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def unflatten_params(model: nn.Module, theta: torch.Tensor) -> dict[str, torch.Tensor]:
    """Split a flat vector into a name -> tensor dict shaped like ``model``'s parameters."""
    out, offset = {}, 0
    for name, p in model.named_parameters():
        out[name] = theta[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    if offset != theta.numel():
        raise ValueError(f"theta: expected {offset} entries for this model, got {theta.numel()}")
    return out


def with_params(model: nn.Module, theta: torch.Tensor) -> nn.Module:
    """A deep copy of ``model`` whose parameters are the flat vector ``theta``."""
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for p, value in zip(clone.parameters(), unflatten_params(model, theta).values()):
            p.copy_(value)
    return clone


def param_dtype(model: nn.Module) -> torch.dtype:
    """dtype of the model's first parameter."""
    return next(model.parameters()).dtype
