"""The human-readable form of a report: tables as plain data (title, columns, rows of text).

The CLI draws them with rich; nothing here prints or knows about terminals. A table shows
the headline numbers; ``--json`` has everything (pass@k for every k, histograms, curves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BAR_WIDTH = 24
_KIND_ORDER = {"fused": 0, "rft": 1}


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    caption: str | None = None
    total_row: bool = False  # the last row sums up the others (drawn after a rule)
    left: tuple[int, ...] = (0,)  # left-aligned columns (numbers are right-aligned)


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def num(x: float | int | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, int) or float(x).is_integer() and abs(x) >= 1000:
        return f"{int(x):,}"
    return f"{x:.{digits}f}"


def bar(share: float) -> str:
    n = round(share * BAR_WIDTH)
    return "█" * n if n or not share else "▏"


def shown_ks(n: int) -> list[int]:
    """Every k up to 16; beyond, powers of two and n itself."""
    if n <= 16:
        return list(range(1, n + 1))
    ks = [k for k in (2 ** i for i in range(n.bit_length())) if k <= n]
    return ks if ks[-1] == n else [*ks, n]


def full_k(s: dict[str, Any], n_problems: int) -> int | None:
    """The largest k that every problem reaches (pass@k over all of them)."""
    ks = [int(k) for k, c in s.get("problems_at_k", {}).items() if c == n_problems and n_problems]
    return max(ks) if ks else None


def tables(report: dict[str, Any]) -> list[Table]:
    out: list[Table] = []
    for kind, make in (("trajectories", _trajectories), ("graded", _graded),
                       ("problems", _problems), ("samples", _samples)):
        if kind in report:
            out += make(report[kind])
    if "loss" in report:
        out.append(_loss(report["loss"]["runs"]))
    if report.get("bad"):
        out.append(_bad(report["bad"], report.get("bad_records", [])))
    return out


def _bad(n_bad: int, shown: list[dict[str, str]]) -> Table:
    """The records --keep-going left out, with their error."""
    more = n_bad - len(shown)
    return Table(f"{_n(n_bad, 'bad record')} left out (--keep-going)", ["record", "error"],
                 [[e["where"], e["error"]] for e in shown], left=(0, 1),
                 caption=f"... and {more:,} more" if more > 0 else None)


# --------------------------------------------------------------------------- pieces


def _dots(*parts: str) -> str:
    return " · ".join(p for p in parts if p) or "-"


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _tokens(t: dict[str, Any] | None) -> str:
    if not t:
        return "-"
    return _dots(f"mean {t['mean']:.0f}", f"median {t['median']:.0f}", f"p90 {t['p90']:.0f}",
                 f"max {t['max']:,}") + f"  ({t['source']})"


def _histogram(title: str, head: str, counts: dict[str, int]) -> Table:
    total = sum(counts.values())
    t = Table(title, [head, "problems", "share", ""], left=(0, 3))
    for label, c in counts.items():
        share = c / total if total else 0.0
        t.rows.append([label, f"{c:,}", pct(share), bar(share)])
    return t


def _capped(counts: dict[str, int], cap: int) -> dict[str, int]:
    """Counts keyed by small integers, everything from ``cap`` up in one ``cap+`` row."""
    out: dict[str, int] = {}
    for key, c in counts.items():
        label = key if int(key) < cap else f"{cap}+"
        out[label] = out.get(label, 0) + c
    return out


def _k_table(s: dict[str, Any]) -> Table:
    t = Table("pass@k and maj@k", ["k", "pass@k", "maj@k", "problems"])
    passes, majs, counts = s["pass_at_k"], s["maj_at_k"], s["problems_at_k"]
    for k in shown_ks(len(passes)):
        key = str(k)
        t.rows.append([key, num(passes[key]), num(majs[key]), f"{counts[key]:,}"])
    return t


def _maj_estimator(s: dict[str, Any]) -> str:
    """The estimator in a few words (the JSON's maj_at_k_estimator has it all)."""
    from tf_tools.stats.metrics import MAJ_EXACT_MAX_N, MAJ_RESAMPLES

    resampled = s.get("maj_at_k_resampled_problems", 0)
    how = (f"exact, except {_n(resampled, 'problem')} with n > {MAJ_EXACT_MAX_N}: "
           f"{MAJ_RESAMPLES} seeded orderings" if resampled else "exact")
    return f"mean over all k-subsets of the n samples, a t-way tie counts 1/t ({how})"


def _at_full(s: dict[str, Any], n_problems: int, name: str) -> str:
    k = full_k(s, n_problems)
    return "-" if k is None else f"{num(s[name][str(k)])} @{k}"


def _spp(s: dict[str, Any]) -> str:
    r = s.get("samples_per_problem")
    if not r:
        return "-"
    return str(r["min"]) if r["min"] == r["max"] else f"{r['min']}-{r['max']}"


def _grouped(by: str, groups: dict[str, dict[str, Any]], everything: dict[str, Any],
             title: str, columns: list[str], row: Any) -> Table:
    t = Table(f"{title} by {by}", [by, *columns], total_row=True)
    for name, s in groups.items():
        t.rows.append([name, *row(s)])
    t.rows.append(["all", *row(everything)])
    return t


# --------------------------------------------------------------------------- kinds


def _trajectories(sec: dict[str, Any]) -> list[Table]:
    s = sec["all"]
    if "groups" in sec:
        def row(g: dict[str, Any]) -> list[str]:
            return [f"{g['samples']:,}", f"{g['problems']:,}", _spp(g), pct(g["truncation_rate"]),
                    num(g["tokens"]["mean"], 0) if g["tokens"] else "-"]
        return [_grouped(sec["by"], sec["groups"], s, "trajectories",
                         ["samples", "problems", "n", "truncated", "tokens"], row)]
    t = Table(f"trajectories: {_n(s['samples'], 'sample')} of {_n(s['problems'], 'problem')}", ["", "value"], left=(0, 1),
              caption="grade them (tf-grade) for accuracy, pass@k and maj@k")
    t.rows += [["samples per problem", _spp(s)],
               ["finish reason", _dots(*(f"{k} {v:,}" for k, v in s["finish_reason"].items()))],
               ["truncated", f"{pct(s['truncation_rate'])}  (finish_reason length)"],
               ["completion tokens", _tokens(s["tokens"])]]
    return [t]


def _graded(sec: dict[str, Any]) -> list[Table]:
    s = sec["all"]
    if "groups" in sec:
        def row(g: dict[str, Any]) -> list[str]:
            n = g["problems"] - g["problems_ungradable"]
            return [f"{g['problems']:,}", f"{g['samples']:,}", _spp(g), pct(g["accuracy"]),
                    pct(g["truncation_rate"]), pct(g["no_answer_rate"]),
                    _at_full(g, n, "pass_at_k"), _at_full(g, n, "maj_at_k"),
                    num(g["tokens"]["mean"], 0) if g["tokens"] else "-"]
        return [_grouped(sec["by"], sec["groups"], s, "graded trajectories",
                         ["problems", "samples", "n", "accuracy", "truncated", "no answer",
                          "pass@n", "maj@n", "tokens"], row)]
    v = s["verdicts"]
    gradable = s["samples"] - v["ungradable"]
    t = Table(f"graded trajectories: {_n(s['samples'], 'sample')} of {_n(s['problems'], 'problem')}",
              ["", "value"], left=(0, 1))
    t.rows += [
        ["accuracy", f"{pct(s['accuracy'])}  ({v['correct']:,} of {gradable:,} gradable samples)"],
        ["truncated", f"{pct(s['truncation_rate'])}  ({v['truncated']:,} hit the length limit)"],
        ["no answer", f"{pct(s['no_answer_rate'])}  ({v['no_answer']:,} without an extractable answer)"],
        ["verdicts", _dots(*(f"{k} {c:,}" for k, c in v.items()))],
        ["samples per problem", _spp(s)],
        ["problems", _dots(f"{s['problems_all_correct']:,} all correct",
                           f"{s['problems_some_correct']:,} some correct",
                           f"{s['problems_none_correct']:,} none correct",
                           f"{s['problems_ungradable']:,} ungradable" if s["problems_ungradable"] else "")],
        ["completion tokens", _tokens(s["tokens"])],
        ["mean tokens by verdict", _dots(*(f"{k} {m:.0f}" for k, m in s["tokens_mean_by_verdict"].items()))],
    ]
    if "label_agreement" in s:
        t.rows.append(["agreement with 'label'", f"{pct(s['label_agreement'])} of {s['labelled']:,}"])
    if s["pass_at_k"]:
        t.rows.append(["maj@k", _maj_estimator(s)])
    return [t, _k_table(s)] if s["pass_at_k"] else [t]


def _problems(sec: dict[str, Any]) -> list[Table]:
    s = sec["all"]
    if "groups" in sec:
        def row(g: dict[str, Any]) -> list[str]:
            n = g["problems"] - g["problems_no_gradable"]
            return [f"{g['problems']:,}", pct(g["accuracy"]), num(g["error_rate"].get("mean")),
                    num(g["entropy"].get("mean")), num(g["error_modes"]["mean"], 2),
                    f"{g['problems_fusable']:,}", f"{g['problems_no_correct']:,}",
                    _at_full(g, n, "pass_at_k"), _at_full(g, n, "maj_at_k")]
        return [_grouped(sec["by"], sec["groups"], s, "problem summaries",
                         ["problems", "accuracy", "error rate", "entropy", "modes", "fusable",
                          "no correct", "pass@n", "maj@n"], row)]
    e, h, m = s["error_rate"], s["entropy"], s["error_modes"]
    t = Table(f"problem summaries: {_n(s['problems'], 'problem')}, {_n(s['samples'], 'sample')}", ["", "value"],
              left=(0, 1))
    t.rows += [
        ["accuracy", pct(s["accuracy"])],
        ["error rate per problem", _dots(f"mean {num(e.get('mean'))}", f"median {num(e.get('median'))}")],
        ["entropy (nats), problems with errors", _dots(f"mean {num(h.get('mean'))}", f"median {num(h.get('median'))}",
                                             f"max {num(h.get('max'))}")],
        ["error modes per problem", _dots(f"mean {num(m['mean'], 2)}",
                                          f"effective e^H {num(s['effective_modes_mean'], 2)} (problems with errors)")],
        ["problems with wrong answers", f"{h['count']:,}"],
        ["problems", _dots(f"{s['problems_all_correct']:,} all correct",
                           f"{s['problems_fusable']:,} fusable",
                           f"{s['problems_no_correct']:,} with no correct sample")],
    ]
    if s["pass_at_k"]:
        t.rows.append(["maj@k", _maj_estimator(s)])
    out = [t, _histogram("error rate per problem", "error rate", e["histogram"]),
           _histogram("entropy (nats), problems with errors", "entropy", h["histogram"]),
           _histogram("error modes per problem", "modes", _capped(m["counts"], 10))]
    if s["pass_at_k"]:
        out.append(_k_table(s))
    return out


def _samples(sec: dict[str, Any]) -> list[Table]:
    s = sec["all"]
    if "groups" in sec:
        def row(g: dict[str, Any]) -> list[str]:
            return [f"{g['samples']:,}", f"{g['problems']:,}", f"{g['kinds'].get('fused', 0):,}",
                    f"{g['kinds'].get('rft', 0):,}", num(g["k_mean"], 2),
                    num(g["tokens"]["multiplier"], 2)]
        return [_grouped(sec["by"], sec["groups"], s, "training samples",
                         ["samples", "problems", "fused", "rft", "mean k", "token ×"], row)]
    tok = s["tokens"]
    t = Table(f"training samples: {_n(s['samples'], 'sample')} of {_n(s['problems'], 'problem')}", ["", "value"],
              left=(0, 1))
    t.rows += [
        ["kind", _dots(*(f"{k} {c:,} ({pct(c / s['samples'])})"
                         for k, c in sorted(s["kinds"].items(), key=lambda kc: _KIND_ORDER.get(kc[0], 9))))],
        ["k (wrong attempts)", f"mean {num(s['k_mean'], 2)}"],
        [f"tokens ({tok['counter']})", _dots(f"{tok['total']:,} in all", f"{tok['rft_equivalent']:,} as RFT")],
        ["token multiplier", f"{num(tok['multiplier'], 2)}×  (fused data / the same samples as RFT)"],
        ["multiplier by k", _dots(*(f"k={k} {x:.2f}×" for k, x in tok["multiplier_by_k"].items()))],
        ["mean tokens per sample", _dots(*(f"{k} {x:.0f}" for k, x in tok["mean_by_kind"].items()))],
    ]
    if s["segment_char_share"]:
        t.rows.append(["assistant text", _dots(*(f"{pct(x, 0)} {k}" for k, x in s["segment_char_share"].items()))])
    if "fuse" in s:
        t.rows.append(["tf-fuse", _dots(f"policy {s['fuse']['policy']}", f"tokenizer {s['fuse']['tokenizer']}")])
    out = [t]
    if s["k"]:
        out.append(_histogram("k distribution (k = 0: RFT sample)", "k", s["k"]))
        out[-1].columns[1] = "samples"
    return out


def _loss(runs: dict[str, dict[str, Any]]) -> Table:
    evaluated = any(s.get("final_eval_loss") is not None for s in runs.values())
    t = Table("training runs (loss per optimizer step)",
              ["run", "steps", "first loss", "final loss", "min loss (step)", "last 10% mean",
               *(["eval loss"] if evaluated else []), "tokens", "seconds", "tok/s"])
    for name, s in runs.items():
        if not s["steps"]:
            t.rows.append([name, "0", *["-"] * (len(t.columns) - 2)])
            continue
        t.rows.append([name, f"{s['steps']:,}", num(s["first_loss"], 4), num(s["final_loss"], 4),
                       f"{num(s['min_loss'], 4)} ({s['min_loss_step']})",
                       num(s["last_10pct_mean_loss"], 4),
                       *([num(s.get("final_eval_loss"), 4)] if evaluated else []),
                       f"{s['tokens']:,}" if isinstance(s["tokens"], int) else "-",
                       num(s["seconds"], 1), num(s["tokens_per_s"], 0)])
    return t


# --------------------------------------------------------------------------- --compare


def points(x: float, sign: bool = True) -> str:
    """A difference of two shares in percentage points: +3.0."""
    return f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}"


def compare_line(c: dict[str, Any]) -> str:
    """The comparison in one line (for a closing table or a log)."""
    a, b = c["a"], c["b"]
    lo, hi = c["ci95"]
    return (f"{b['name']} - {a['name']}: {points(c['difference'])} points "
            f"({pct(b['accuracy'])} vs {pct(a['accuracy'])}, {c['problems']:,} problems), "
            f"95% CI [{points(lo)}, {points(hi)}], McNemar p = {c['mcnemar_p']:.3g} "
            f"({c['won']:,} won, {c['lost']:,} lost)")


def compare_tables(c: dict[str, Any]) -> list[Table]:
    a, b = c["a"], c["b"]
    left = c["left_out"]
    notes = [f"{left['only_in_a']:,} problems only in A and {left['only_in_b']:,} only in B "
             "left out (--intersect)" if c["intersect"] else "",
             f"{left['ungradable']:,} problems without a gradable sample in one file left out"
             if left["ungradable"] else "",
             *(f"{n:,} bad record{'' if n == 1 else 's'} of {key.upper()} left out (--keep-going)"
               for key, n in c.get("bad_records", {}).items() if n)]
    sides = Table(f"paired comparison: {c['problems']:,} problems matched by id",
                  ["", "name", "problems", "samples", "accuracy", "truncated", "no answer", "file"],
                  left=(0, 1, 7), caption="; ".join(n for n in notes if n) or None)
    for key, s in (("A", a), ("B", b)):
        sides.rows.append([key, s["name"], f"{s['n']:,}", f"{s['samples']:,}", pct(s["accuracy"]),
                           pct(s["truncation_rate"]), pct(s["no_answer_rate"]), s["path"]])
    lo, hi = c["ci95"]
    several = max(a["samples_per_problem"]["max"], b["samples_per_problem"]["max"]) > 1
    won, lost = (("B's share correct higher", "A's higher") if several
                 else ("B right, A wrong", "B wrong, A right"))
    result = Table("B - A", ["", "value"], left=(0, 1))
    result.rows += [
        ["difference B - A", f"{points(c['difference'])} points of accuracy"],
        ["95% interval", f"[{points(lo)}, {points(hi)}] points  ({c['ci_method']})"],
        ["McNemar p", f"{c['mcnemar_p']:.4g}  (exact, two-sided, on the {c['won'] + c['lost']:,} "
                      "problems where A and B differ)"],
        ["problems", _dots(f"{c['won']:,} won ({won})", f"{c['lost']:,} lost ({lost})",
                           f"{c['both_correct']:,} both correct", f"{c['both_wrong']:,} both wrong",
                           f"{c['tied']:,} tied between" if c["tied"] else "")],
    ]
    return [sides, result]
