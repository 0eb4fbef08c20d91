"""Profiling: storage, MACs, activation memory and latency of an ONNX model against device budgets."""

from edgekd.profile.report import (
    Check,
    GraphFacts,
    ProfileReport,
    analyse_graph,
    profile_model,
)

__all__ = ["Check", "GraphFacts", "ProfileReport", "analyse_graph", "profile_model"]
