"""tf-grade's core (``grader.py``): verdicts for graded trajectories. The mathematics of
answers it grades with (extraction, equivalence, the math-verify pool) is in ``tf_tools.answers``."""
