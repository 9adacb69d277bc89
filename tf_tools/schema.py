"""The record contract's shared constants (DESIGN.md §3): what every stage agrees on.

Holds values that more than one stage must spell the same way; no I/O, no logic.
"""

from __future__ import annotations

#: tf-sample's system prompt (the Qwen2.5-Math CoT convention, DESIGN §4.1); tf-fuse writes
#: it into training samples whose trajectories do not say which prompt they were sampled with
DEFAULT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
