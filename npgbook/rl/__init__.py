"""Reinforcement learning with the note's Algorithm 1: rollouts, advantages, NPG, TRPO, vanilla policy gradient.

* :mod:`npgbook.rl.rollout` -- vectorized rollouts on gymnasium environments (line 1);
* :mod:`npgbook.rl.advantages` -- GAE(lambda) with a value baseline (line 2);
* :mod:`npgbook.rl.value` -- the learned value baseline;
* :mod:`npgbook.rl.algorithms` -- the updates (lines 3-4) and the shared training loop.
"""

from .advantages import gae, normalize_advantages
from .algorithms import (
    ALGORITHMS,
    HELP,
    IterationRecord,
    PolicyData,
    TrainConfig,
    Trainer,
    TrainResult,
    UpdateResult,
    UpdateSkippedWarning,
    first_solved,
    learning_curve,
    npg_update,
    policy_gradient,
    surrogate,
    train,
    trpo_update,
    vpg_update,
)
from .first_order import AdamEpochs, kl_vpg_update, surrogate_objective
from .normalization import RunningNormalizer
from .rollout import Batch, VectorSampler, evaluate_actor, evaluate_policy, make_vector_env
from .value import ValueFunction

__all__ = [
    "ALGORITHMS",
    "HELP",
    "AdamEpochs",
    "Batch",
    "IterationRecord",
    "PolicyData",
    "RunningNormalizer",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "UpdateResult",
    "UpdateSkippedWarning",
    "ValueFunction",
    "VectorSampler",
    "evaluate_actor",
    "evaluate_policy",
    "first_solved",
    "gae",
    "kl_vpg_update",
    "learning_curve",
    "make_vector_env",
    "normalize_advantages",
    "npg_update",
    "policy_gradient",
    "surrogate",
    "surrogate_objective",
    "train",
    "trpo_update",
    "vpg_update",
]
