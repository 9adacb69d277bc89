"""tf-cluster's core: error statistics per problem and clusters of equivalent wrong answers.

``problems.py`` turns graded trajectories into problem summaries; ``answers.py`` clusters
answers (canonical keys, representatives, the closure), deciding each pair through
``equivalence.py`` (fast paths, math-verify in a killable pool). The mathematics it
clusters with (canonical keys, forms, constant values, the pool) is in ``tf_tools.answers``.
"""

from tf_tools.clustering.answers import (
    ClusterConfig,
    ClusterStats,
    cluster_answers,
    entropy,
)
from tf_tools.clustering.equivalence import Equivalence
from tf_tools.clustering.problems import (
    GRADE_HINT,
    SAMPLE_KEYS,
    cluster_records,
    summarize_problem,
)

__all__ = [
    "GRADE_HINT", "SAMPLE_KEYS", "ClusterConfig", "ClusterStats", "Equivalence",
    "cluster_answers", "cluster_records", "entropy", "summarize_problem",
]
