"""How many wrong attempts a fused sample gets: the k policies (DESIGN §4 step 4).

With e the error rate, D = exp(entropy) the effective number of error modes and m the
number of wrong-answer clusters (rounding is half up, with a 1e-9 guard so that a float such
as 2.4999999999 for an exact 2.5 still rounds up):

- ``adaptive`` (default): k = min(k_max, m, floor(gamma * e * D + 0.5));
- ``threshold``: k = min(k_max, m) when e >= min_error_rate and D >= min_modes, else 0;
- ``linear``: k = min(k_max, m, floor(gamma * e * k_max + 0.5)) (frequency only);
- ``fixed``: k = min(k_max, m) (errors' frequency and diversity ignored);
- ``rft``: k = 0, the plain rejection-sampling sample.

k = 0 gives the RFT sample. k never exceeds m or k_max.
"""

from __future__ import annotations

import math

POLICIES = ("adaptive", "threshold", "linear", "fixed", "rft")
_EPS = 1e-9


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5 + _EPS)


def choose_k(policy: str, error_rate: float | None, entropy: float | None, m: int, *,
             k_max: int = 3, gamma: float = 1.0, min_error_rate: float = 0.25,
             min_modes: float = 1.0) -> int:
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    if m <= 0 or not error_rate or policy == "rft":
        return 0
    d = math.exp(entropy or 0.0)
    if policy == "adaptive":
        k = round_half_up(gamma * error_rate * d)
    elif policy == "linear":
        k = round_half_up(gamma * error_rate * k_max)
    elif policy == "threshold":
        k = k_max if error_rate >= min_error_rate and d >= min_modes - _EPS else 0
    else:  # fixed
        k = k_max
    return max(0, min(k_max, m, k))


def parameters(policy: str, *, k_max: int, gamma: float, min_error_rate: float,
               min_modes: float) -> dict[str, float | int]:
    """The parameters a policy actually uses (for ``_tf.fuse``)."""
    table: dict[str, dict[str, float | int]] = {
        "adaptive": {"gamma": gamma, "k_max": k_max},
        "linear": {"gamma": gamma, "k_max": k_max},
        "threshold": {"k_max": k_max, "min_error_rate": min_error_rate, "min_modes": min_modes},
        "fixed": {"k_max": k_max},
        "rft": {},
    }
    return table[policy]
