"""tf-cluster's core: error statistics per problem and clusters of equivalent wrong answers.

``problems.py`` turns graded trajectories into problem summaries; ``answers.py`` clusters
answers (canonical keys, fast paths, math-verify in a killable pool); ``values.py`` reads
the value of a constant answer without SymPy.
"""

from tf_tools.clustering.answers import (
    ClusterConfig,
    ClusterStats,
    Equivalence,
    canonical_key,
    cluster_answers,
    entropy,
    fast_decision,
    form_of,
    forms_differ,
)
from tf_tools.clustering.problems import (
    GRADE_HINT,
    SAMPLE_KEYS,
    VERDICTS,
    cluster_records,
    is_fusable,
    summarize_problem,
)
from tf_tools.clustering.values import constant_value, latexify

__all__ = [
    "GRADE_HINT", "SAMPLE_KEYS", "VERDICTS", "ClusterConfig", "ClusterStats", "Equivalence",
    "canonical_key", "cluster_answers", "cluster_records", "constant_value", "entropy",
    "fast_decision",
    "form_of", "forms_differ", "is_fusable", "latexify", "summarize_problem",
]
