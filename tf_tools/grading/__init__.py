"""Answer extraction, equivalence and the timed worker pool behind tf-grade."""
