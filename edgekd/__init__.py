"""edgekd: distil a large embedding model into a small one that fits an edge device, and prove that it fits."""

__version__ = "0.1.0"
