"""Shared test settings: float64 everywhere and a hypothesis profile that fits CI."""

import torch
from hypothesis import settings

torch.set_default_dtype(torch.float64)
settings.register_profile("npgbook", max_examples=40, deadline=None, derandomize=True)
settings.load_profile("npgbook")
