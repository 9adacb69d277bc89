"""Entry points that must act before a command's CLI module is imported.

``tf-grade`` launches the fork server of its math-verify workers first (``pool.prestart``):
its import of math-verify and SymPy (about a second of one core) then runs beside the
import of typer and the grading of the first records, rather than after them. Not for
``--help`` / ``--version``, which grade nothing.
"""

from __future__ import annotations

import sys


def grade() -> None:
    if not {"-h", "--help", "--version"} & set(sys.argv[1:]):
        from tf_tools.answers.pool import prestart

        prestart()
    from tf_tools.cli.grade import main

    main()
