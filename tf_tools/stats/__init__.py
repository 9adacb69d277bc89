"""tf-stats' core: summarise the output of any tf-tools stage.

    from tf_tools.records import read_jsonl_file
    from tf_tools.stats import StatsConfig, summarize
    report = summarize(read_jsonl_file("graded.jsonl"), StatsConfig(by="level"))
    report.to_dict()["graded"]["all"]["pass_at_k"]["8"]

- ``metrics.py``: pass@k (Chen et al. 2021, exact), maj@k (the same estimator family: the
  expectation over k-subsets; the rule is in its docstring), quantiles and histogram bins;
- ``compare.py``: two evaluation files paired by problem (``tf-stats --compare``): accuracies,
  the difference with a bootstrap interval, the exact McNemar test;
- ``trajectories.py``: accumulators for trajectories and graded trajectories (pass@k, maj@k);
- ``problems.py``: the accumulator for problem summaries (error rate, entropy, error modes);
- ``training.py``: accumulators for training samples (token multiplier) and loss logs;
- ``values.py``: numbers read from records strictly, values quoted in errors;
- ``report.py``: which kind a record is, ``--by`` grouping, the ``Report``, ``summarize``;
- ``tables.py``: the report as tables (plain data; the CLI draws them);
- ``plots.py``: PNG charts with matplotlib (imported only there).

It never prints, and reads its input once, holding per sample only what pass@k and maj@k
need.
"""

from tf_tools.schema import kind_of
from tf_tools.stats.metrics import (
    CORRECT,
    MAJ_ESTIMATOR,
    AnswerGrouper,
    VoteCounts,
    maj_at_k,
    maj_curve,
    pass_at_k,
    pass_at_k_exact,
    vote_counts,
)
from tf_tools.stats.report import (
    KINDS,
    Report,
    StatsConfig,
    field_value,
    resolve_inputs,
    summarize,
)

__all__ = [
    "CORRECT", "KINDS", "MAJ_ESTIMATOR", "AnswerGrouper", "Report", "StatsConfig", "VoteCounts",
    "field_value", "kind_of", "maj_at_k", "maj_curve", "pass_at_k", "pass_at_k_exact",
    "resolve_inputs", "summarize", "vote_counts",
]
