"""PNG charts of a report, with matplotlib's Agg backend (no display needed).

One file per chart, named by the kind of record it comes from:

- ``graded_pass_at_k.png``, ``problems_pass_at_k.png``: pass@k and maj@k against k;
- ``graded_tokens.png``: completion lengths of correct and wrong samples;
- ``problems_error_rate.png``, ``problems_entropy.png`` (the paper's Figure 1) and
  ``problems_error_modes.png``: per-problem distributions;
- ``samples_k.png``: the k distribution of training samples (k = 0 is RFT);
- ``loss.png``: the loss curve of each training run (raw and smoothed), runs named by their
  folder (``model.trajfusion``) and told apart by colour, line style and marker.

With ``--by`` and at most ``MAX_GROUPS`` groups, each chart shows the groups side by side;
with more, only everything together. matplotlib is imported here and nowhere else.
"""

from __future__ import annotations

import math
import os
from typing import Any

MAX_GROUPS = 6
DPI = 110


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        from tf_tools.errors import MissingDependency

        raise MissingDependency("--plot needs matplotlib", "plot") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(report: Any, folder: str) -> list[str]:
    """Draw every chart the report has data for into ``folder``; returns the paths."""
    plt = _pyplot()
    os.makedirs(folder, exist_ok=True)
    summary = report.to_dict()
    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        path = os.path.join(folder, name)
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
        written.append(path)

    for kind in ("graded", "problems"):
        if kind in summary and summary[kind]["all"]["pass_at_k"]:
            save(_pass_at_k(plt, summary[kind], kind), f"{kind}_pass_at_k.png")
    if "graded" in report.sections:
        fig = _tokens(plt, report.sections["graded"].all)
        if fig is not None:
            save(fig, "graded_tokens.png")
    if "problems" in report.sections:
        sec = report.sections["problems"]
        groups = _groups(sec)
        if sec.all.error_rates:
            save(_error_rate(plt, groups), "problems_error_rate.png")
        if sec.all.error_entropies:
            save(_entropy(plt, groups), "problems_entropy.png")
        if sec.all.modes:
            save(_modes(plt, groups), "problems_error_modes.png")
    if "samples" in summary and summary["samples"]["all"]["k"]:
        save(_k(plt, summary["samples"]), "samples_k.png")
    if report.runs:
        from tf_tools.stats.report import run_labels

        save(_loss(plt, report.runs, run_labels(list(report.runs))), "loss.png")
    return written


def _groups(section: Any) -> list[tuple[str, Any]]:
    if section.groups and len(section.groups) <= MAX_GROUPS:
        from tf_tools.stats.report import natural_key

        return [(g, section.groups[g]) for g in sorted(section.groups, key=natural_key)]
    return [("all", section.all)]


def _bars(ax: Any, labels: list[str], series: list[tuple[str, list[int]]],
          colors: list[str] | None = None) -> None:
    """Side-by-side bars per label, each with its count on top (``colors``: per bar, one series)."""
    width = 0.8 / len(series)
    for i, (name, counts) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(labels))]
        color = colors if colors and len(series) == 1 else f"C{i}"
        rects = ax.bar(xs, counts, width, label=name if len(series) > 1 else None, color=color)
        ax.bar_label(rects, labels=[str(c) if c else "" for c in counts], fontsize=8, padding=1)
    ax.set_xticks(range(len(labels)), labels)
    ax.margins(y=0.12)
    if len(series) > 1:
        ax.legend(fontsize=8)


def _problem_bars(ax: Any, labels: list[str], series: list[tuple[str, list[int]]], n: int,
                  what: str, xlabel: str) -> None:
    """``_bars`` counting problems: "``what`` per problem — ``n`` problems"."""
    _bars(ax, labels, series)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("problems")
    ax.set_title(f"{what} per problem — {n:,} problems")


def _pass_at_k(plt: Any, sec: dict[str, Any], kind: str) -> Any:
    from tf_tools.stats.metrics import MAJ_EXACT_MAX_N, MAJ_RESAMPLES

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = sec.get("groups", {})
    shown = list(groups.items()) if groups and len(groups) <= MAX_GROUPS else [("all", sec["all"])]
    one = len(shown) == 1
    for i, (name, s) in enumerate(shown):
        ks = [int(k) for k in s["pass_at_k"]]
        color = f"C{i}"
        ax.plot(ks, list(s["pass_at_k"].values()), "o-", color=color, ms=4,
                label="pass@k (unbiased)" if one else name)
        majs = [(int(k), v) for k, v in s["maj_at_k"].items() if v is not None]
        if majs:
            ax.plot(*zip(*majs, strict=True), "s--", color=color, alpha=0.7, ms=4,
                    label="maj@k (mean over k-subsets)" if one else None)
    if not one:
        ax.plot([], [], "o-", color="0.4", label="pass@k (solid)")
        ax.plot([], [], "s--", color="0.4", label="maj@k (dashed, mean over k-subsets)")
    s = sec["all"]
    n_max = len(s["pass_at_k"])
    if n_max > 16:
        ax.set_xscale("log", base=2)
    ax.set_xticks([k for k in (2 ** i for i in range(n_max.bit_length())) if k <= n_max]
                  if n_max > 16 else range(1, n_max + 1))
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("share of problems")
    ax.set_ylim(min(0.0, *(v for v in s["pass_at_k"].values())) - 0.02, 1.02)
    what = "graded trajectories" if kind == "graded" else "problem summaries"
    resampled = s.get("maj_at_k_resampled_problems", 0)
    how = (f"exact, except {resampled:,} problems with n > {MAJ_EXACT_MAX_N}: "
           f"{MAJ_RESAMPLES} seeded orderings" if resampled else "exact")
    ax.set_title(f"pass@k (unbiased) and maj@k — {s['problems']:,} problems ({what})\n"
                 f"maj@k: expectation over the k-subsets of the n samples, a tie counts 1/t ({how})",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _tokens(plt: Any, acc: Any) -> Any:
    right = acc.tokens["correct"]
    wrong = acc.tokens["incorrect"] + acc.tokens["no_answer"] + acc.tokens["truncated"]
    if not right and not wrong:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    top = max(right + wrong)
    bins = [top * i / 30 for i in range(31)] if top else 1
    for values, name, color in ((right, "correct", "C2"), (wrong, "wrong / no answer / truncated", "C3")):
        if values:
            median = sorted(values)[len(values) // 2]
            ax.hist(values, bins=bins, histtype="stepfilled", alpha=0.25, color=color)
            ax.hist(values, bins=bins, histtype="step", lw=1.8, color=color,
                    label=f"{name}: {len(values):,} samples, median {median:,}")
            ax.axvline(median, color=color, ls=":", lw=1.5)
    source = "+".join(sorted(acc.token_source)) or "?"
    ax.set_xlabel(f"completion tokens ({source})")
    ax.set_ylabel("samples")
    ax.set_title(f"Completion length — {acc.samples:,} graded samples")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _error_rate(plt: Any, groups: list[tuple[str, Any]]) -> Any:
    from tf_tools.stats.metrics import bin_counts
    from tf_tools.stats.problems import ERROR_RATE_EDGES

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    series = [(name, list(bin_counts(acc.error_rates, ERROR_RATE_EDGES, exact_low=True, exact_high=True).values()))
              for name, acc in groups]
    labels = list(bin_counts([], ERROR_RATE_EDGES, exact_low=True, exact_high=True))
    labels[0] += "\nall correct"
    labels[-1] += "\nall wrong"
    _problem_bars(ax, labels, series, sum(len(acc.error_rates) for _n, acc in groups),
                  "Error rate", "error rate of the problem (wrong / gradable samples)")
    return fig


def _entropy(plt: Any, groups: list[tuple[str, Any]]) -> Any:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    left_out = sum(len(acc.entropies) - len(acc.error_entropies) for _n, acc in groups)
    groups = [(name, acc) for name, acc in groups if acc.error_entropies]
    top = max((h for _n, acc in groups for h in acc.error_entropies), default=0.0)
    width = max(0.125, math.ceil(top / 24 * 8) / 8)
    n_bins = max(1, math.ceil((top + 1e-9) / width))
    edges = [width * i for i in range(n_bins + 1)]
    data = [acc.error_entropies for _n, acc in groups]
    names = [name for name, _acc in groups]
    zero = [sum(1 for h in d if h == 0) for d in data]
    counts, _edges, patches = ax.hist(data, bins=edges, label=names if len(groups) > 1 else None,
                                      edgecolor="white")
    containers = patches if len(groups) > 1 else [patches]
    for container in containers:
        ax.bar_label(container, labels=[str(int(p.get_height())) if p.get_height() else ""
                                        for p in container], fontsize=7, padding=1)
    n = sum(len(d) for d in data)
    ax.set_xlabel("entropy over the clusters of wrong answers (nats); 0 = all wrong answers equal")
    ax.set_ylabel("problems")
    notes = [f"{sum(zero):,} at 0: all wrong answers equal" if sum(zero) else "",
             f"{left_out:,} without wrong answers not shown" if left_out else ""]
    note = "; ".join(x for x in notes if x)
    ax.set_title(f"Error entropy per problem — {n:,} problems with wrong answers"
                 + (f"\n({note})" if note else ""), fontsize=11)
    ax.margins(y=0.12)
    if len(groups) > 1:
        ax.legend(fontsize=8)
    return fig


def _modes(plt: Any, groups: list[tuple[str, Any]]) -> Any:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    top = max(max(acc.modes, default=0) for _n, acc in groups)
    cap = min(top, 10)
    labels = [str(m) for m in range(cap + 1)]
    if top > cap:
        labels[-1] = f"{cap}+"
    series = [(name, [sum(1 for x in acc.modes if min(x, cap) == m) for m in range(cap + 1)])
              for name, acc in groups]
    _problem_bars(ax, labels, series, sum(len(acc.modes) for _n, acc in groups),
                  "Error modes", "error modes (clusters of equivalent wrong answers)")
    return fig


def _k(plt: Any, sec: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    s = sec["all"]
    groups = sec.get("groups", {})
    shown = list(groups.items()) if groups and len(groups) <= MAX_GROUPS else [("all", s)]
    ks = sorted({int(k) for _n, g in shown for k in g["k"]})
    labels = [f"{k}\n(RFT)" if k == 0 else str(k) for k in ks]
    _bars(ax, labels, [(name, [g["k"].get(str(k), 0) for k in ks]) for name, g in shown],
          ["0.6" if k == 0 else "C1" for k in ks])
    mult = s["tokens"]["multiplier"]
    ax.set_xlabel("k (wrong attempts in the sample)")
    ax.set_ylabel("training samples")
    ax.set_title(f"k per training sample — {s['samples']:,} samples, "
                 f"token multiplier {mult:.2f}×" if mult else f"{s['samples']:,} samples")
    return fig


LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P")


def _loss(plt: Any, runs: dict[str, Any], labels: dict[str, str]) -> Any:
    """One curve per run, told apart by colour, line style and marker (also in grey print)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (path, acc) in enumerate(runs.items()):
        if not acc.losses:
            continue
        name = labels[path]
        style = {"color": f"C{i}", "ls": LINE_STYLES[i % len(LINE_STYLES)],
                 "marker": MARKERS[i % len(MARKERS)]}
        window = max(1, len(acc.losses) // 20)
        final = f"final {acc.losses[-1]:.3f}"
        if window == 1:
            ax.plot(acc.steps, acc.losses, lw=1.8, ms=5, markevery=max(1, len(acc.losses) // 15),
                    label=f"{name} ({final})", **style)
            continue
        ax.plot(acc.steps, acc.losses, color=style["color"], ls=style["ls"], alpha=0.25, lw=1)
        smooth = [sum(acc.losses[max(0, j - window + 1):j + 1]) / (j + 1 - max(0, j - window + 1))
                  for j in range(len(acc.losses))]
        ax.plot(acc.steps, smooth, lw=2.2, ms=6, markevery=max(1, len(smooth) // 12),
                label=f"{name} (mean of {window} steps; {final})", **style)
    for i, (path, acc) in enumerate(runs.items()):
        _eval_curve(ax, acc, i, labels[path])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (mean per trained token)")
    steps = max((len(a.losses) for a in runs.values()), default=0)
    names = [labels[p] for p in runs]
    what = " vs ".join(names) if len(names) <= 3 else f"{len(names)} runs"
    evaluated = any(a.eval for a in runs.values())
    ax.set_title(f"{'Training and evaluation' if evaluated else 'Training'} loss — {what}, "
                 f"up to {steps:,} steps", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, handlelength=3.5)
    return fig


def _eval_curve(ax: Any, acc: Any, i: int, name: str) -> None:
    """A run's evaluation loss (tf-train --eval-*): its colour, dotted, square markers."""
    if not getattr(acc, "eval", None):
        return
    steps, values = zip(*acc.eval, strict=True)
    ax.plot(steps, values, color=f"C{i}", ls=":", lw=1.8, marker="s", ms=5,
            label=f"{name} eval (final {values[-1]:.3f})")
