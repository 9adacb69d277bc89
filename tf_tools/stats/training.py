"""Accumulators for training data (tf-fuse's samples) and training runs (tf-train's loss log).

Token multiplier: what a TrajFusion data set costs to train on, relative to the RFT data set
built from the same samples — ``sum(tokens of each sample) / sum(tokens of the same sample
with only its correct segment as the assistant message)``, system and user prompt included
in both. This is exactly the ratio tf-fuse reports at the end of a run. Tokens are counted
with ``--tokenizer`` (the student's tokenizer, as tf-fuse does) or, by default, with
tf-fuse's approximation (``\\w+`` runs and single other non-space characters). A sample
without ``segments`` (a data set from elsewhere) counts as its own RFT sample.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from typing import Any

from tf_tools.errors import InputError
from tf_tools.models import ApproxTokenCounter
from tf_tools.schema import SEGMENT_KINDS, provenance
from tf_tools.stats.metrics import describe
from tf_tools.stats.values import integer, real


class TrainingSampleStats:
    """Training samples: fused vs RFT, the k distribution, the token multiplier."""

    kind = "samples"

    def __init__(self, id_key: str = "id", counter: Any = None) -> None:
        self.counter = counter if counter is not None else ApproxTokenCounter()
        self.id_key = id_key
        self.samples = 0
        self.kinds: Counter[str] = Counter()
        self.k: Counter[int] = Counter()  # k of the samples that have one
        self.ids: set[Hashable] = set()
        self.tokens = 0
        self.rft_tokens = 0
        self.tokens_by_k: dict[int, list[int]] = {}  # k -> [tokens, rft tokens]
        self.sample_tokens: dict[str, list[int]] = {}  # kind -> tokens of each sample
        self.segment_chars: Counter[str] = Counter()
        self.policy: dict[str, Any] | None = None

    def add(self, rec: dict[str, Any], pos: int, where: str | None) -> None:
        messages = rec.get("messages")
        if not isinstance(messages, list) or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            raise InputError("'messages' must be a list of {role, content} objects", where)
        # count first (a tokenizer may reject the sample), then change the totals
        n_tokens = self.counter.count(messages)
        n_rft, segment_chars = self._rft_tokens(messages, rec.get("segments"), n_tokens)
        self.samples += 1
        kind = rec["kind"] if isinstance(rec.get("kind"), str) else "other"
        self.kinds[kind] += 1
        pid = rec.get(self.id_key)
        self.ids.add(pid if isinstance(pid, Hashable) else repr(pid))
        k = integer(rec.get("k"))
        if k is not None:
            self.k[k] += 1
        self.segment_chars.update(segment_chars)
        self.tokens += n_tokens
        self.rft_tokens += n_rft
        pair = self.tokens_by_k.setdefault(-1 if k is None else k, [0, 0])
        pair[0] += n_tokens
        pair[1] += n_rft
        self.sample_tokens.setdefault(kind, []).append(n_tokens)
        if self.policy is None:
            fuse = provenance(rec, "fuse")
            if fuse is not None:
                params = fuse["parameters"] if isinstance(fuse.get("parameters"), dict) else {}
                self.policy = {"policy": fuse.get("policy"), "tokenizer": params.get("tokenizer")}

    def _rft_tokens(self, messages: list[dict[str, Any]], segments: Any,
                    n_tokens: int) -> tuple[int, Counter[str]]:
        """Tokens of the sample as RFT (its correct segment only) and its segments' characters."""
        chars: Counter[str] = Counter()
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
        if last is None or not isinstance(segments, list):
            return n_tokens, chars
        text = messages[last]["content"]
        correct = None
        for seg in segments:
            if not isinstance(seg, dict):
                continue
            start, end, kind = seg.get("start"), seg.get("end"), seg.get("kind")
            if isinstance(start, int) and isinstance(end, int) and kind in SEGMENT_KINDS:
                chars[kind] += end - start
                if kind == "correct":
                    correct = (start, end)
        if correct is None or correct == (0, len(text)):
            return n_tokens, chars
        rft = [*messages[:last], {**messages[last], "content": text[correct[0]:correct[1]]}]
        return self.counter.count(rft), chars

    def summary(self) -> dict[str, Any]:
        chars = sum(self.segment_chars.values())
        return {
            "samples": self.samples,
            "problems": len(self.ids),
            "kinds": dict(self.kinds.most_common()),
            "fused_share": self.kinds["fused"] / self.samples if self.samples else None,
            "k": {str(k): v for k, v in sorted(self.k.items())},
            "k_mean": sum(k * v for k, v in self.k.items()) / sum(self.k.values()) if self.k else None,
            "tokens": {
                "counter": getattr(self.counter, "name", "approx"),
                "total": self.tokens,
                "rft_equivalent": self.rft_tokens,
                "multiplier": self.tokens / self.rft_tokens if self.rft_tokens else None,
                "multiplier_by_k": {str(k): t / r for k, (t, r) in sorted(self.tokens_by_k.items())
                                    if k >= 0 and r},
                "mean_by_kind": {kind: sum(v) / len(v) for kind, v in self.sample_tokens.items()},
            },
            "segment_char_share": {k: self.segment_chars[k] / chars for k in SEGMENT_KINDS} if chars else None,
            **({"fuse": self.policy} if self.policy else {}),
        }


class LossStats:
    """One training run's loss log (``RUN/loss.jsonl``: one line per optimizer step)."""

    kind = "loss"

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.eval: list[list[float]] = []  # [step, eval_loss] where the run evaluated
        self.last: dict[str, Any] = {}

    def add(self, rec: dict[str, Any], pos: int, where: str | None) -> None:
        step, loss = rec.get("step"), rec.get("loss")
        if not isinstance(step, int) or not isinstance(loss, (int, float)) or isinstance(loss, bool):
            raise InputError("loss log line needs an integer 'step' and a number 'loss'", where)
        self.steps.append(step)
        self.losses.append(float(loss))
        ev = _number(rec.get("eval_loss"))
        if ev is not None:
            self.eval.append([step, ev])
        self.last = rec

    def summary(self) -> dict[str, Any]:
        if not self.losses:
            return {"steps": 0}
        i_min = min(range(len(self.losses)), key=self.losses.__getitem__)
        tail = self.losses[-max(1, len(self.losses) // 10):]
        # the run's totals, from its last line: numbers or nothing (a hand-edited log may
        # hold anything there, and a table cannot divide a string)
        seconds, lr, epochs = (_number(self.last.get(key)) for key in ("seconds", "lr", "epoch"))
        tokens, trained = (integer(self.last.get(key)) for key in ("tokens", "trained_tokens"))
        stride = max(1, len(self.steps) // 50)
        curve = [[s, x] for s, x in zip(self.steps[::stride], self.losses[::stride], strict=True)]
        if curve[-1][0] != self.steps[-1]:
            curve.append([self.steps[-1], self.losses[-1]])
        return {
            "steps": self.steps[-1],
            "first_loss": self.losses[0],
            "final_loss": self.losses[-1],
            "min_loss": self.losses[i_min],
            "min_loss_step": self.steps[i_min],
            "last_10pct_mean_loss": sum(tail) / len(tail),
            "loss": describe(self.losses),
            "final_lr": lr,
            "epochs": epochs,
            "tokens": tokens,
            "trained_tokens": trained,
            "seconds": seconds,
            "tokens_per_s": tokens / seconds if tokens is not None and seconds else None,
            "curve": curve,
            "final_eval_loss": self.eval[-1][1] if self.eval else None,
            "eval_curve": self.eval,
        }


def _number(value: Any) -> float | int | None:
    return value if real(value) is not None else None

