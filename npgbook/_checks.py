"""Argument validation shared by the whole package.

Every public function checks its inputs here so that bad input fails early with a
``ValueError`` that names the offending argument, instead of a NaN that travels on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

DTYPE = torch.float64
"""The default floating-point type of the package: the geometry checks need float64."""


def to_tensor(name: str, value: Any) -> Tensor:
    """Convert ``value`` to a tensor without passing Python numbers through float32.

    A tensor is returned as it is. Anything else goes through :func:`numpy.asarray` first, so a
    Python ``float`` (or a list of them) becomes float64 directly -- ``torch.as_tensor(0.13)``
    would round it to torch's default dtype, float32 (0.12999999523...) -- and Python ints stay
    integers. A numpy array keeps its own dtype.

    Raises:
        ValueError: naming ``name``, if ``value`` is not convertible or not real-valued.
    """
    if isinstance(value, Tensor):
        tensor = value
    else:
        try:
            array = np.asarray(value)
            if array.dtype.kind not in "biuf":
                raise TypeError(f"dtype {array.dtype}")
            tensor = torch.as_tensor(array)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{name} must be convertible to a real tensor, got {value!r}") from exc
    if tensor.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {tensor.dtype}")
    return tensor


def as_tensor(name: str, value: Any, dtype: torch.dtype = DTYPE) -> Tensor:
    """Convert ``value`` to a floating tensor, raising ``ValueError`` naming ``name``.

    Floating tensors and numpy arrays keep their dtype; Python numbers and lists become
    ``dtype`` (float64 by default) directly, never by way of float32; integer and boolean
    values are cast to ``dtype``.
    """
    from_python = not isinstance(value, (Tensor, np.ndarray, np.generic))
    tensor = to_tensor(name, value)
    if not (
        tensor.is_floating_point()
        or tensor.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)
    ):
        raise ValueError(f"{name} must be real-valued, got dtype {tensor.dtype}")
    if not tensor.is_floating_point() or from_python:
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
    if (
        isinstance(value, bool)
        or not isinstance(value, (int,))
        and not (isinstance(value, float) and value.is_integer())
    ):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number
