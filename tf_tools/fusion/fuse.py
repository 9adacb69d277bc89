"""tf-fuse's core: problem summaries in, training samples (fused or RFT) out.

For each problem summary (tf-cluster's output, DESIGN §3) in input order:

1. keep the correct trajectories, deduplicated by text, in sample_idx order, at most
   ``max_correct`` (no correct trajectory: the problem is dropped and counted);
2. choose k with the policy (``policy.py``) from the error rate, the entropy and the number
   m of wrong-answer clusters (ordered largest first, ties: smaller first sample_idx);
3. training sample j takes clusters (j + i) mod m for i = 0..k-1, one trajectory of each
   (a seeded choice), each followed by a reflection prompt, and ends with correct
   trajectory j (DESIGN §4 step 5);
4. with ``max_tokens``, drops wrong segments from the smallest cluster up until prompt + text
   fits; drops the sample only if even the RFT sample does not fit (step 7).

Randomness comes from ``random.Random(f"{seed}:{id}")`` per problem (seeded by a string,
which Python hashes with SHA-512, not ``hash()``), so a problem's samples depend only on the
seed, its id and its record: not on the other problems, the order or a shard.
Every field of the problem summary except the trajectory lists is carried into its samples;
the gold ``answer`` as text (``answer_text``: 12 -> "12"), so that every sample's answer has
one type for Arrow (``datasets``, Parquet).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from tf_tools import __version__
from tf_tools.errors import InputError
from tf_tools.fusion import policy as policies
from tf_tools.fusion.text import END_MARKERS, REFLECTIONS, SEPARATOR, assemble, strip_markers
from tf_tools.models import TokenCounter, load_counter
from tf_tools.schema import (
    DEFAULT_SYSTEM,
    TF_KEY,
    Record,
    guarded,
    is_failed,
    provenance,
    sample_order,
)

#: FuseConfig.system's default: the prompt the teacher was sampled with (DESIGN §3)
FROM_TRAJECTORIES = "\x00from-trajectories"

#: problem-summary keys not carried into training samples (the trajectory lists)
DROPPED_KEYS = frozenset({"correct", "clusters", "unclustered"})
CLUSTER_HINT = "run tf-cluster first: tf-grade trajectories.jsonl | tf-cluster | tf-fuse"


@dataclass(frozen=True)
class FuseConfig:
    policy: str = "adaptive"
    gamma: float = 1.0
    k_max: int = 3
    min_error_rate: float = 0.25  # threshold policy
    min_modes: float = 1.0  # threshold policy (effective number of error modes, e^H)
    max_correct: int = 4
    seed: int = 0
    reflections: tuple[str, ...] = REFLECTIONS
    reflections_source: str | None = None  # where they came from (a file name), for _tf.fuse
    #: the system message of every sample; FROM_TRAJECTORIES (the default): the system prompt
    #: the teacher was sampled with (``_tf.sample.system``), or tf-sample's default when the
    #: trajectories carry no ``_tf.sample``; None or "": no system message
    system: str | None = FROM_TRAJECTORIES
    max_tokens: int | None = None
    tokenizer: str | None = None
    id_key: str = "id"
    problem_key: str = "problem"
    completion_key: str = "completion"
    separator: str = SEPARATOR
    markers: tuple[str, ...] = END_MARKERS
    keep_going: bool = False  # a bad problem summary is passed on marked, not the end of the run

    def __post_init__(self) -> None:
        if self.policy not in policies.POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}")
        if not self.reflections:
            raise ValueError("need at least one reflection prompt")


@dataclass
class FuseStats:
    problems: int = 0
    no_correct: int = 0  # problems dropped: no correct trajectory
    problems_fused: int = 0  # problems with at least one fused sample
    problems_rft: int = 0  # problems whose samples are all RFT
    problems_over_budget: int = 0  # problems whose every sample is over the budget
    samples: int = 0
    fused: int = 0
    rft: int = 0
    over_budget: int = 0  # samples dropped: even the RFT sample does not fit
    trimmed: int = 0  # wrong segments dropped to fit the budget
    k: Counter[int] = field(default_factory=Counter)  # k of the samples written
    k_policy: Counter[int] = field(default_factory=Counter)  # k the policy chose, per problem
    tokens: int = 0  # prompt + assistant tokens of the samples written
    rft_tokens: int = 0  # the same samples without their wrong segments
    failed: int = 0
    counter: str = "approx"  # what counted the tokens (the tokenizer's path, or approx)

    @property
    def multiplier(self) -> float | None:
        return self.tokens / self.rft_tokens if self.rft_tokens else None

    def summary_lines(self) -> list[str]:
        """The run for a reader (tf-fuse prints it on stderr); none for no problems."""
        if not self.problems:
            return []
        k = ", ".join(f"{k}: {n}" for k, n in sorted(self.k.items())) or "-"
        lines = [
            f"{self.problems} problems in: {self.problems_fused} fused, {self.problems_rft} RFT "
            f"only, {self.no_correct + self.problems_over_budget} dropped ({self.no_correct} with "
            f"no correct trajectory, {self.problems_over_budget} over the token budget)",
            f"{self.samples} samples: {self.fused} fused, {self.rft} RFT; {self.over_budget} "
            f"dropped over the budget, {self.trimmed} wrong segments trimmed",
            f"k per sample: {k}",
        ]
        if self.multiplier is not None:
            lines.append(f"token multiplier (fused / RFT tokens, {self.counter}): "
                         f"{self.multiplier:.2f}x ({self.tokens} / {self.rft_tokens})")
        return lines


@dataclass
class _Traj:
    text: str
    sample_idx: Any
    system: str | None = None  # the system prompt it was sampled with (see sampled_system)


def sampled_system(traj: dict[str, Any]) -> str | None:
    """The system prompt a trajectory was sampled with: ``_tf.sample.system`` (None or ""
    for none); tf-sample's default when the trajectory carries no ``_tf.sample`` (it came
    from elsewhere, and tf-sample would have used that default to evaluate the student)."""
    sample = provenance(traj, "sample")
    if sample is None:
        return DEFAULT_SYSTEM
    system = sample.get("system")
    return system if isinstance(system, str) and system else None


def _trajectories(items: Any, kinds: tuple[str, ...], text_key: str) -> list[_Traj]:
    """Usable trajectories of a list: the right verdict and not truncated."""
    out = []
    for t in items if isinstance(items, list) else []:
        if not isinstance(t, dict) or t.get("verdict", kinds[0]) not in kinds:
            continue
        if t.get("finish_reason") == "length":
            continue
        if not isinstance(t.get(text_key), str):
            raise InputError(f"trajectory {t.get('sample_idx')!r} has no {text_key!r} text",
                             hint="name the model output with --completion-key")
        out.append(t)
    out.sort(key=sample_order)
    return [_Traj(t[text_key], t.get("sample_idx"), sampled_system(t)) for t in out]


class Fuser:
    """Turns one problem summary into its training samples."""

    def __init__(self, cfg: FuseConfig, counter: TokenCounter, stats: FuseStats) -> None:
        self.cfg = cfg
        self.counter = counter
        self.stats = stats
        self.params: dict[str, Any] = {
            **policies.parameters(cfg.policy, k_max=cfg.k_max, gamma=cfg.gamma,
                                  min_error_rate=cfg.min_error_rate, min_modes=cfg.min_modes),
            "max_correct": cfg.max_correct, "max_tokens": cfg.max_tokens,
            "tokenizer": counter.name,
            "reflections": cfg.reflections_source
            or ("builtin" if cfg.reflections == REFLECTIONS else "custom"),
        }

    def _clean(self, trajs: list[_Traj]) -> list[_Traj]:
        out = [_Traj(strip_markers(t.text, self.cfg.markers), t.sample_idx, t.system)
               for t in trajs]
        return [t for t in out if t.text]

    def correct(self, rec: Record) -> list[_Traj]:
        seen: set[str] = set()
        kept = []
        for t in self._clean(_trajectories(rec["correct"], ("correct",), self.cfg.completion_key)):
            if t.text not in seen:
                seen.add(t.text)
                kept.append(t)
        return kept[: self.cfg.max_correct]

    def clusters(self, rec: Record) -> list[list[_Traj]]:
        """Wrong-answer clusters largest first (ties: the smaller first sample_idx)."""
        found = []
        for pos, c in enumerate(rec["clusters"]):
            trajs = self._clean(_trajectories(c.get("trajectories") if isinstance(c, dict)
                                              else None, ("incorrect",), self.cfg.completion_key))
            if trajs:
                first = min(sample_order({"sample_idx": t.sample_idx}) for t in trajs)
                found.append(((-len(trajs), first, pos), trajs))
        found.sort(key=lambda x: x[0])
        return [trajs for _, trajs in found]

    def fuse(self, rec: Record) -> list[Record]:
        cfg, stats = self.cfg, self.stats
        pid = rec.get(cfg.id_key)
        stats.problems += 1
        correct = self.correct(rec)
        if not correct:
            stats.no_correct += 1
            return []
        clusters = self.clusters(rec)
        m = len(clusters)
        k0 = policies.choose_k(cfg.policy, rec.get("error_rate"), rec.get("entropy"), m,
                               k_max=cfg.k_max, gamma=cfg.gamma,
                               min_error_rate=cfg.min_error_rate, min_modes=cfg.min_modes)
        stats.k_policy[k0] += 1
        rng = random.Random(f"{cfg.seed}:{pid}")
        carried = {k: v for k, v in rec.items() if k not in DROPPED_KEYS and k != TF_KEY}
        out = []
        for j, right in enumerate(correct):
            prompt = self.prompt(rec, right)
            order = [(j + i) % m for i in range(k0)]
            wrong = [(c, rng.choice(clusters[c])) for c in order]
            if k0 <= len(cfg.reflections):
                lines = rng.sample(cfg.reflections, k0)
            else:
                lines = [rng.choice(cfg.reflections) for _ in range(k0)]
            sample = self._fit(prompt, list(zip(wrong, lines, strict=True)), right)
            if sample is None:
                stats.over_budget += 1
                continue
            messages, segments, sources, used, n_tokens = sample
            k = len(used)
            out.append(self._record(pid, k, k0, j, messages, segments, sources, used, carried,
                                    rec.get(TF_KEY)))
            stats.k[k] += 1
            stats.tokens += n_tokens
            stats.rft_tokens += n_tokens if k == 0 else self.counter.count(
                [*prompt, {"role": "assistant", "content": right.text}])
        stats.samples += len(out)
        n_fused = sum(1 for s in out if s["kind"] == "fused")
        stats.fused += n_fused
        stats.rft += len(out) - n_fused
        if not out:
            stats.problems_over_budget += 1
        elif n_fused:
            stats.problems_fused += 1
        else:
            stats.problems_rft += 1
        return out

    def prompt(self, rec: Record, right: _Traj) -> list[dict[str, str]]:
        """System (the one the correct trajectory was sampled with, unless overridden) and
        user messages: the prompt the student is evaluated with by tf-sample."""
        system = right.system if self.cfg.system == FROM_TRAJECTORIES else self.cfg.system
        prompt = [{"role": "system", "content": system}] if system else []
        return [*prompt, {"role": "user", "content": str(rec[self.cfg.problem_key])}]

    def _fit(self, prompt: list[dict[str, str]], wrong: list[tuple[tuple[int, _Traj], str]],
             right: _Traj) -> tuple[Any, ...] | None:
        """Assemble; drop wrong segments from the smallest cluster up until it fits."""
        while True:
            pieces: list[tuple[str, str]] = []
            sources: list[Any] = []
            for (_c, traj), line in wrong:
                pieces += [("incorrect", traj.text), ("reflection", line)]
                sources += [traj.sample_idx, None]
            pieces.append(("correct", right.text))
            sources.append(right.sample_idx)
            text, segments = assemble(pieces, self.cfg.separator)
            messages = [*prompt, {"role": "assistant", "content": text}]
            n_tokens = self.counter.count(messages)
            if self.cfg.max_tokens is None or n_tokens <= self.cfg.max_tokens:
                return messages, segments, sources, [c for (c, _t), _l in wrong], n_tokens
            if not wrong:
                return None
            # clusters are ordered largest first, so the highest index is the smallest
            del wrong[max(range(len(wrong)), key=lambda i: wrong[i][0][0])]
            self.stats.trimmed += 1

    def _record(self, pid: Any, k: int, k0: int, j: int, messages: list[dict[str, str]],
                segments: list[dict[str, Any]], sources: list[Any], used: list[int],
                carried: Record, tf: Any) -> Record:
        out: Record = {self.cfg.id_key: pid, "kind": "fused" if k else "rft", "k": k,
                       "messages": messages, "segments": segments}
        for key, value in carried.items():
            out.setdefault(key, value)
        if "answer" in out:
            out["answer"] = answer_text(out["answer"])
        prov = dict(tf) if isinstance(tf, dict) else {}
        prov["fuse"] = {
            "version": __version__, "policy": self.cfg.policy, "parameters": self.params,
            "seed": self.cfg.seed, "sample": j, "k_policy": k0, "clusters": used,
            "sources": sources,
        }
        out[TF_KEY] = prov
        return out


def answer_text(value: Any) -> str | None:
    """The gold answer as text, so that the ``answer`` of every sample has one type (a data
    set that mixes 12 and "1/2" would not load in ``datasets``, or would come back with "12"
    turned into 12): a string as it is, null as null, anything else as its JSON text
    (12 -> "12", 0.5 -> "0.5", ["2", "3"] -> '["2","3"]')."""
    if value is None or isinstance(value, str):
        return value
    import orjson

    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def _check(rec: Record, cfg: FuseConfig) -> tuple[str, str] | None:
    for key in ("clusters", "correct"):
        if not isinstance(rec.get(key), list):
            what = "has no" if rec.get(key) is None else "has a non-list"
            return (f"record {what} {key!r} field: tf-fuse reads problem summaries", CLUSTER_HINT)
    if cfg.problem_key not in rec:
        return (f"record has no {cfg.problem_key!r} field (the problem text)",
                "name it with --problem-key")
    return None


def fuse_records(records: Iterable[Record], cfg: FuseConfig | None = None,
                 stats: FuseStats | None = None, counter: TokenCounter | None = None,
                 where: Callable[[], str] | None = None) -> Iterator[Record]:
    """Training samples for each problem summary, in input order, one problem at a time.

    Records already marked failed upstream are passed on unchanged and counted. A record
    that is not a problem summary, or any exception while fusing one, raises InputError
    naming its line (``cfg.keep_going``: the record is passed on marked failed instead).
    """
    cfg = cfg if cfg is not None else FuseConfig()
    stats = stats if stats is not None else FuseStats()
    fuser = Fuser(cfg, counter if counter is not None else load_counter(cfg.tokenizer), stats)
    stats.counter = fuser.counter.name
    for rec in records:
        if is_failed(rec):
            stats.failed += 1
            yield rec
            continue
        # one bad problem never ends the run
        samples, failed = guarded(rec, "fuse", partial(_fuse_checked, fuser, rec, cfg),
                                  keep_going=cfg.keep_going, where=where)
        if failed is not None:
            yield failed
            stats.failed += 1
            continue
        yield from samples


def _fuse_checked(fuser: Fuser, rec: Record, cfg: FuseConfig) -> list[Record]:
    problem = _check(rec, cfg)
    if problem is not None:
        raise InputError(problem[0], hint=problem[1])
    return fuser.fuse(rec)
