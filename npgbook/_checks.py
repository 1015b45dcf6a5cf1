"""Argument validation shared by the whole package.

Every public function checks its inputs here so that bad input fails early with a
``ValueError`` that names the offending argument, instead of a NaN that travels on.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

DTYPE = torch.float64
"""The default floating-point type of the package: the geometry checks need float64."""


def as_tensor(name: str, value: Any, dtype: torch.dtype = DTYPE) -> Tensor:
    """Convert ``value`` to a floating tensor, raising ``ValueError`` naming ``name``."""
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be convertible to a tensor, got {value!r}") from exc
    if not (tensor.is_floating_point() or tensor.dtype in (torch.int32, torch.int64, torch.bool)):
        raise ValueError(f"{name} must be real-valued, got dtype {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor


def require_finite(name: str, tensor: Tensor) -> Tensor:
    """Raise ``ValueError`` if ``tensor`` holds a NaN or an infinity."""
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} must be finite, got non-finite values in {tensor}")
    return tensor


def require_vector(name: str, tensor: Tensor, length: int | None = None) -> Tensor:
    """Raise ``ValueError`` unless ``tensor`` is 1-D (and has ``length`` entries if given)."""
    if tensor.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector, got shape {tuple(tensor.shape)}")
    if length is not None and tensor.shape[0] != length:
        raise ValueError(f"{name} must have {length} entries, got shape {tuple(tensor.shape)}")
    return tensor


def require_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, raising ``ValueError`` unless it is finite and > 0 (or ≥ 0)."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real number, got {value!r}") from exc
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {number}")
    return number


def require_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising ``ValueError`` unless it is an integer ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        isinstance(value, float) and value.is_integer()
    ):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number
