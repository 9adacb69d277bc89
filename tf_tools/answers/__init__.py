"""The mathematics of answers, shared by tf-grade, tf-cluster and tf-stats (layer 2).

- ``extract.py``: the final answer in a model's output, the gold answer(s) in a data field;
- ``boxes.py``: the argument of ``\\boxed{...}`` and chains of adjacent boxes (for both);
- ``equivalence.py``: normal forms, numbers, and ``fast_equal`` (the cheap paths that decide
  most pairs without SymPy);
- ``values.py``: the value of a constant answer without SymPy, and plain-text math as LaTeX;
- ``forms.py``: canonical keys, forms (what can prove two answers different), and the
  symmetric ``fast_decision``;
- ``worker.py``: math-verify parsing and comparison, in a worker process only;
- ``pool.py``: the killable worker pool with a hard per-item time limit.

Nothing here reads or writes records, and importing the package imports none of its modules:
``worker.py`` pulls in math-verify and SymPy, which only worker processes need.
"""
