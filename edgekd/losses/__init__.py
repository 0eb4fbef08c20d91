"""Losses of the student's embedding against the reduced teacher embedding."""

from edgekd.losses.configs import LossConfig
from edgekd.losses.registry import LOSSES, build_loss

__all__ = ["LOSSES", "LossConfig", "build_loss"]
