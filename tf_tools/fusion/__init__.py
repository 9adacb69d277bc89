"""TrajFusion: turn per-problem error clusters into fused (or RFT) training samples.

``fuse.py`` (the per-problem pipeline), ``policy.py`` (the k rules), ``text.py`` (reflection
prompts, marker stripping, assembly with offsets). The token counters for the length budget
live in ``tf_tools.models`` (tf-stats counts with them too); they are re-exported here.
"""

from tf_tools.fusion.fuse import FuseConfig, Fuser, FuseStats, fuse_records
from tf_tools.fusion.policy import POLICIES, choose_k
from tf_tools.fusion.text import END_MARKERS, REFLECTIONS, assemble, load_reflections, strip_markers
from tf_tools.models import ApproxTokenCounter, HFTokenCounter, load_counter

__all__ = [
    "END_MARKERS", "POLICIES", "REFLECTIONS", "ApproxTokenCounter", "FuseConfig", "FuseStats",
    "Fuser", "HFTokenCounter", "assemble", "choose_k", "fuse_records", "load_counter",
    "load_reflections", "strip_markers",
]
