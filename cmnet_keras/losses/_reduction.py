"""Shared argument checks of the loss functions."""

from keras import ops

REDUCTIONS = ("mean", "none")


def check_reduction(reduction):
    """Raises ValueError unless `reduction` is "mean" or "none"."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def reduce_per_clip(values, reduction):
    """Returns the mean of per-clip `values` [B] ("mean") or `values` ("none")."""
    check_reduction(reduction)
    return ops.mean(values) if reduction == "mean" else values
