"""Domain data: the dataset registry and its configs (light to import); the catalogue of clips
(edgekd.data.sources), decoding (audio), the audio store (store), windows (windows) and a recipe's data as the stages
see it (domain) are imported where they are used."""

from edgekd.data.configs import DataConfig
from edgekd.data.registry import DATASETS

__all__ = ["DATASETS", "DataConfig"]
