"""Domain data: the dataset registry and its configs (light to import); audio loading and windows live in
edgekd.data.audio and edgekd.data.windows."""

from edgekd.data.configs import DataConfig
from edgekd.data.registry import DATASETS

__all__ = ["DATASETS", "DataConfig"]
