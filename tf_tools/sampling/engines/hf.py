"""The transformers engine: ``generate`` in batches, reproducible one sample at a time.

transformers samples a whole batch from one global RNG, so a sample would change with its
batch. Instead each row draws its own noise: temperature, top-k and top-p shape the
logits, then Gumbel noise from a generator seeded by (sample seed, step) is added and the
argmax taken (the Gumbel-max trick: an exact sample from the softmax). ``generate`` runs
greedy over those perturbed logits, batched and with its KV cache, and a sample depends
only on its own seed and prompt.
"""

from __future__ import annotations

from typing import Any

from tf_tools.errors import TfError
from tf_tools.models import load_tokenizer
from tf_tools.sampling.engines.base import Completion, EngineConfig, Request, SamplingConfig

_MASK64 = 2**64 - 1


def _step_seed(seed: int, step: int) -> int:
    # splitmix64 of (seed, step): well-mixed, cheap, stable
    z = (seed + 0x9E3779B97F4A7C15 * (step + 1)) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & (2**63 - 1)


class SeededGumbel:
    """A logits processor: shape the logits per ``sp`` and add per-row seeded Gumbel noise."""

    def __init__(self, seeds: list[int], prompt_len: int, sp: SamplingConfig) -> None:
        self.seeds = seeds
        self.prompt_len = prompt_len
        self.sp = sp

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        sp = self.sp
        scores = scores.float()
        if sp.temperature <= 0:
            return scores  # greedy
        scores = scores / sp.temperature
        if sp.top_k > 0 and sp.top_k < scores.shape[-1]:
            kth = torch.topk(scores, sp.top_k, dim=-1).values[..., -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if sp.top_p < 1.0:
            sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
            probs = torch.softmax(sorted_scores, dim=-1)
            remove = probs.cumsum(dim=-1) - probs > sp.top_p  # keep the token that crosses p
            sorted_scores = sorted_scores.masked_fill(remove, float("-inf"))
            scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
        step = input_ids.shape[1] - self.prompt_len
        noise = torch.empty_like(scores)
        for row, seed in enumerate(self.seeds):
            gen = torch.Generator().manual_seed(_step_seed(seed, step))
            u = torch.rand(scores.shape[-1], generator=gen, dtype=torch.float64)
            noise[row] = (-torch.log(-torch.log(u.clamp_min(1e-300)))).to(scores.dtype)
        return scores + noise


class HfEngine:
    name = "hf"

    def __init__(self, cfg: EngineConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # stderr is ours: one progress display
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if cfg.dtype == "auto":
            dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        else:
            dtype = getattr(torch, {"half": "float16", "float": "float32"}.get(cfg.dtype, cfg.dtype))
        try:
            self.tokenizer = load_tokenizer(cfg.model)
            self.model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype).to(self.device)  # type: ignore[arg-type]
        except (OSError, ValueError) as exc:
            raise TfError(f"transformers could not load {cfg.model}: {exc}".splitlines()[0]) from exc
        self.model.eval()
        self.dtype = str(dtype).replace("torch.", "")
        self.batch_size = max(1, cfg.batch_size)
        limit = getattr(self.model.config, "max_position_embeddings", None) or 4096
        self.max_model_len = min(cfg.max_model_len or limit, limit)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])

    def generate(self, requests: list[Request], sp: SamplingConfig) -> list[Completion]:
        # longest first keeps padding low; results go back to request order
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].prompt_ids))
        results: list[Completion | None] = [None] * len(requests)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, done in zip(idx, self._batch([requests[i] for i in idx], sp), strict=True):
                results[i] = done
        return results  # type: ignore[return-value]

    def _batch(self, reqs: list[Request], sp: SamplingConfig) -> list[Completion]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        width = max(len(r.prompt_ids) for r in reqs)
        ids = torch.full((len(reqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(reqs), width), dtype=torch.long)
        for row, r in enumerate(reqs):  # left padding
            ids[row, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
            mask[row, width - len(r.prompt_ids):] = 1
        max_new = max(1, min(sp.max_tokens, self.max_model_len - width))
        gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=max_new, pad_token_id=self.pad_id,
                                   eos_token_id=sorted(self.eos_ids),
                                   stop_strings=list(sp.stop) or None)
        processor = SeededGumbel([r.seed for r in reqs], width, sp)
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                generation_config=gen_cfg, logits_processor=LogitsProcessorList([processor]),
                tokenizer=self.tokenizer if sp.stop else None,
            )
        done = []
        for row in out[:, width:].tolist():
            tokens, reason = [], "length"
            for tok in row:
                if tok in self.eos_ids:
                    reason = "stop"
                    tokens.append(tok)
                    break
                tokens.append(tok)
            text = str(self.tokenizer.decode([t for t in tokens if t not in self.eos_ids],
                                             skip_special_tokens=True))
            for s in sp.stop:
                cut = text.find(s)
                if cut >= 0:
                    text, reason = text[:cut], "stop"
            done.append(Completion(text, reason, len(tokens)))
        return done
