"""tf-train's data path: loss masks from the chat template and segments, the batch plan, and
packing that leaks no attention across samples (checked against unpacked rows)."""

from __future__ import annotations

import numpy as np
import pytest

from tf_tools.errors import InputError, UsageError
from tf_tools.fusion.text import assemble
from tf_tools.training.batches import pack_batch, pack_rows, pad_batch, plan_epoch
from tf_tools.training.data import (
    DataConfig,
    LoadStats,
    by_kind_and_k,
    load_samples,
    tokenize_record,
)
from tf_tools.training.loss import forward_losses, per_sample_losses

SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
PROBLEM = "Tom has 3 apples and buys 5 more. How many apples does he have?"
WRONG_1 = "Tom has 3 apples, buys 5 more: 3 + 5 = 7, so \\boxed{7}"
REFLECT = "Wait, that answer does not hold up. Let me try again from the start."
WRONG_2 = "3 * 5 = 15, so \\boxed{15}"
CORRECT = "He has 3 + 5 = 8 apples, so \\boxed{8}."


def fused_record(system: str | None = SYSTEM) -> dict:
    """A fused sample as tf-fuse writes it: wrong + R + wrong + R + correct, with segments."""
    text, segments = assemble([("incorrect", WRONG_1), ("reflection", REFLECT),
                               ("incorrect", WRONG_2), ("reflection", REFLECT),
                               ("correct", CORRECT)])
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": PROBLEM}, {"role": "assistant", "content": text}]
    return {"id": "p1", "kind": "fused", "k": 2, "messages": messages, "segments": segments}


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def decode(tok, ids) -> str:
    return tok.decode([int(i) for i in ids], skip_special_tokens=False)


# ----------------------------------------------------------------------------- masks


def test_loss_covers_exactly_the_assistant_message_and_its_end_of_turn(tok):
    rec = fused_record()
    s = tokenize_record(rec, tok, DataConfig())
    content = rec["messages"][-1]["content"]
    assert decode(tok, s.input_ids[s.trained]) == content + "<|im_end|>"
    # the trained tokens are one contiguous run; before it lies exactly the prompt
    idx = np.flatnonzero(s.trained)
    assert (np.diff(idx) == 1).all()
    prompt = tok.apply_chat_template(rec["messages"][:-1], tokenize=False, add_generation_prompt=True)
    assert decode(tok, s.input_ids[: idx[0]]) == prompt
    assert decode(tok, s.input_ids[idx[-1] + 1:]) == "\n"  # the template's newline after <|im_end|>
    # the end-of-turn token is a target
    assert s.input_ids[idx[-1]] == tok.convert_tokens_to_ids("<|im_end|>")


def test_mask_incorrect_takes_exactly_the_wrong_segments_out(tok):
    rec = fused_record()
    full = tokenize_record(rec, tok, DataConfig())
    masked = tokenize_record(rec, tok, DataConfig(mask_incorrect=True))
    assert (masked.input_ids == full.input_ids).all()
    removed = full.trained & ~masked.trained
    assert not (masked.trained & ~full.trained).any()
    assert decode(tok, full.input_ids[removed]) == WRONG_1 + WRONG_2
    kept = decode(tok, masked.input_ids[masked.trained])
    content = rec["messages"][-1]["content"]
    assert kept == content.replace(WRONG_1, "").replace(WRONG_2, "") + "<|im_end|>"
    assert kept.endswith(CORRECT + "<|im_end|>")


def test_mask_reflection_and_both(tok):
    rec = fused_record(system=None)
    full = tokenize_record(rec, tok, DataConfig())
    refl = tokenize_record(rec, tok, DataConfig(mask_reflection=True))
    both = tokenize_record(rec, tok, DataConfig(mask_incorrect=True, mask_reflection=True))
    assert decode(tok, full.input_ids[full.trained & ~refl.trained]) == REFLECT * 2
    assert decode(tok, both.input_ids[both.trained]) == "\n\n" * 4 + CORRECT + "<|im_end|>"


def test_segment_offsets_follow_the_message_not_the_rendered_text(tok):
    """Offsets index the assistant message; the system prompt before it shifts nothing."""
    with_sys = tokenize_record(fused_record(), tok, DataConfig(mask_incorrect=True))
    without = tokenize_record(fused_record(system=None), tok, DataConfig(mask_incorrect=True))
    assert decode(tok, with_sys.input_ids[with_sys.trained]) == decode(
        tok, without.input_ids[without.trained])


def test_every_assistant_turn_is_trained_in_a_multi_turn_chat(tok):
    rec = {"messages": [
        {"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5"},
        {"role": "user", "content": "And 12 + 30?"}, {"role": "assistant", "content": "42"}]}
    s = tokenize_record(rec, tok, DataConfig())
    assert decode(tok, s.input_ids[s.trained]) == "5<|im_end|>42<|im_end|>"


def test_a_token_belongs_to_the_span_of_its_first_character(smollm2):
    """A real 49k BPE merges across a segment's end; the token goes with its first character."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2)
    rec = fused_record()
    full = tokenize_record(rec, tok, DataConfig())
    masked = tokenize_record(rec, tok, DataConfig(mask_incorrect=True))
    assert decode(tok, full.input_ids[full.trained]) == rec["messages"][-1]["content"] + "<|im_end|>"
    removed = decode(tok, full.input_ids[full.trained & ~masked.trained])
    # the masked text is the wrong segments, give or take whitespace a boundary token carries
    assert removed.replace("\n", "") == WRONG_1 + WRONG_2


@pytest.mark.parametrize("rec, message", [
    ({"id": 1, "text": "hi"}, "record has no 'messages' field"),
    ({"messages": "hi"}, "non-empty list"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant turn"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}, "message 0"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "abc"}],
      "segments": [{"kind": "incorrect", "start": 1, "end": 9}]}, "falls outside the assistant message"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "abc"}],
      "segments": [{"kind": "wrong", "start": 0, "end": 1}]}, "segment kind 'wrong'"),
    # a bool is not an offset, at either end (JSON true is not 1)
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "abc"}],
      "segments": [{"kind": "incorrect", "start": 0, "end": True}]}, "integer offsets"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "abc"}],
      "segments": [{"kind": "incorrect", "start": False, "end": 1}]}, "integer offsets"),
])
def test_bad_records_are_named(tok, rec, message):
    with pytest.raises(InputError, match=message):
        tokenize_record(rec, tok, DataConfig())


def test_long_samples_are_skipped_and_reported_never_cut(tok):
    short = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "8"}]}
    long = {"id": "long", "messages": [{"role": "user", "content": "q"},
                                       {"role": "assistant", "content": "8 " * 300}]}
    reports: list[str] = []
    lines = iter(["line 1 of t.jsonl", "line 2 of t.jsonl", "line 3 of t.jsonl"])
    where = {"now": ""}

    def records():
        for r in (short, long, short):
            where["now"] = next(lines)
            yield r

    samples, stats = load_samples(records(), tok, DataConfig(max_length=64), lambda: where["now"],
                                  on_skip=reports.append)
    assert [len(s) for s in samples] == [len(samples[0])] * 2 and stats.too_long == 1
    assert len(reports) == 1 and reports[0].startswith("line 2 of t.jsonl: ")
    assert "--max-length 64" in reports[0] and "'long'" in reports[0]


def test_kept_and_skipped_samples_are_counted_by_kind_and_k(tok):
    def chat(answer: str, **extra) -> dict:
        return {"messages": [{"role": "user", "content": "q"},
                             {"role": "assistant", "content": answer}], **extra}

    long = "8 " * 300
    records = [
        chat("8", kind="fused", k=2),
        chat("8 " * 10, kind="rft", k=0),  # the longest kept answer
        chat(long, kind="fused", k=3), chat(long, kind="fused", k=3), chat(long, kind="fused", k=1),
        chat(long, kind="rft", k=0), chat("8"), chat(long), chat("8", kind="sft", k=True),
        {"id": "bad", "kind": "rft", "k": 0},  # no messages: bad (keep_going)
    ]
    reports: list[str] = []
    samples, stats = load_samples(records, tok, DataConfig(max_length=64), keep_going=True,
                                  on_skip=reports.append)
    assert (stats.read, stats.kept, stats.too_long, stats.bad, stats.empty) == (10, 4, 5, 1, 0)
    assert stats.kept_by == {"fused": {"2": 1}, "rft": {"0": 1}, "other": {"none": 2}}
    assert stats.skipped_by == {"fused": {"3": 2, "1": 1}, "rft": {"0": 2}, "other": {"none": 1}}
    assert list(by_kind_and_k(stats.skipped_by)["fused"]) == ["1", "3"]
    assert stats.skipped == 6 and stats.skipped_fraction == 0.6 and len(reports) == 6
    # the answer "8 8 ... 8 " is 10 x ("8", " ") under Qwen2's pre-tokenizer (digits one by
    # one), plus the end-of-turn token <|im_end|>
    assert stats.longest_answer_tokens == 21 == max(s.answer_tokens for s in samples)
    # with nothing masked, a one-turn sample trains exactly its answer
    assert all(s.answer_tokens == s.n_trained for s in samples)


def test_the_skip_summary_warns_above_one_percent_only():
    import logging

    from tf_tools.training.data import report_skips

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger("tf_tools")
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        report_skips([], LoadStats(read=200, kept=198, too_long=2,
                                   skipped_by={"fused": {"3": 2}}), 512)
        assert lines == ["warning: skipped 2 of 200 samples (1.0%): 2 longer than --max-length "
                         "512 tokens (never cut); by kind and k: fused k=3: 2"]
        lines.clear()
        report_skips([], LoadStats(read=200, kept=197, too_long=3,
                                   skipped_by={"fused": {"3": 2}, "rft": {"0": 1}}), 512)
        assert "by kind and k: fused k=3: 2; rft k=0: 1" in lines[0]
        assert "more than 1% of the training samples are skipped" in lines[1]
        assert lines[2].startswith("hint: pass the training length to tf-fuse --max-tokens")
        lines.clear()
        report_skips([], LoadStats(read=200, kept=200), 512)
        assert lines == []
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


# ----------------------------------------------------------------------------- plan


def test_plan_keeps_every_sample_once_per_epoch_and_groups_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 1000, size=203).tolist()
    for grouped in (True, False):
        plan = plan_epoch(lengths, epoch=1, seed=3, global_batch=16, n_micro=4,
                          group_by_length=grouped)
        flat = [i for step in plan for micro in step for i in micro]
        assert sorted(flat) == list(range(203))  # the remainder (203 = 12 x 16 + 11) is kept
        assert all(len(step) == 4 and all(step) for step in plan)
        assert len(plan) == 13 and max(len(m) for s in plan for m in s) == 4
    plain = plan_epoch(lengths, 1, 3, 16, 4)
    assert plain == plan_epoch(lengths, 1, 3, 16, 4)  # deterministic
    assert plain != plan_epoch(lengths, 2, 3, 16, 4)  # reshuffled per epoch
    # the same global batches whatever the number of processes (micro-batches per step)
    assert [sorted(sum(s, [])) for s in plain] == [sorted(sum(s, [])) for s in plan_epoch(lengths, 1, 3, 16, 8)]

    # length grouping: far less padding than random batches
    def padding(plan):
        slots = sum(len(m) * max(lengths[i] for i in m) for s in plan for m in s)
        return 1 - sum(lengths) / slots
    assert padding(plain) < 0.5 * padding(plan_epoch(lengths, 1, 3, 16, 4, group_by_length=False))


def test_pack_rows_pads_least():
    lengths = [900, 800, 500, 400, 300, 100, 50]
    rows = pack_rows(lengths, capacity=1100)
    loads = [sum(lengths[i] for i in r) for r in rows]
    assert sorted(sum(rows, [])) == list(range(7)) and max(loads) <= 1100
    assert len(rows) * max(loads) == 3300  # 3 rows; one row per sample would take 7 x 900
    assert pack_rows([5, 5, 5], capacity=100) == [[0, 1, 2]]
    assert sorted(pack_rows([900, 880, 870], capacity=1000)) == [[0], [1], [2]]  # padded layout
    rng = np.random.default_rng(1)
    for _ in range(50):
        lens = rng.integers(1, 500, size=int(rng.integers(1, 12))).tolist()
        rows = pack_rows(lens, capacity=600)
        width = max(sum(lens[i] for i in r) for r in rows)
        assert width <= 600 and sorted(sum(rows, [])) == list(range(len(lens)))
        assert len(rows) * width <= len(lens) * max(lens)  # never more slots than padding


# ----------------------------------------------------------------------------- packing


def _toy_samples(tok, n=5):
    out = []
    for i in range(n):
        rec = {"messages": [{"role": "user", "content": f"What is {i} + {i * 7}?" + " Think." * i},
                            {"role": "assistant", "content": f"{i} + {i * 7} = {i * 8}. " * (1 + i)}]}
        out.append(tokenize_record(rec, tok, DataConfig()))
    return out


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_and_padded_rows_give_the_same_per_sample_loss(tiny_model, tok, attn):
    """4D block masks (eager, and sdpa for models whose attention is not pluggable)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32,
                                                 attn_implementation=attn).eval()
    samples = _toy_samples(tok)
    pad_id = tok.pad_token_id
    with torch.no_grad():
        ref = per_sample_losses(model, pad_batch(samples, pad_id), len(samples))
        one_row = pack_batch(samples, pad_id, capacity=4096, attn_implementation=attn)
        assert one_row.input_ids.shape[0] == 1 and one_row.n_tokens == one_row.n_slots
        several = pack_batch(samples, pad_id, capacity=sum(len(s) for s in samples) // 2 + 40,
                              attn_implementation=attn)
        assert 1 < several.input_ids.shape[0] < len(samples)  # rows shared by several samples
        assert several.attention_mask.dim() == 4
        for batch in (one_row, several):
            got = per_sample_losses(model, batch, len(samples))
            assert torch.allclose(got, ref, atol=1e-4, rtol=0), (got - ref).abs().max()
        # the LM head on target positions only (logits_to_keep) changes no loss
        padded = pad_batch(samples, pad_id)
        all_logits, owner_all = forward_losses(model, padded, keep_logits=False)
        kept, owner_kept = forward_losses(model, padded, keep_logits=True)
        assert torch.equal(owner_all, owner_kept)
        assert torch.allclose(all_logits, kept, atol=1e-5)
        # the check has teeth: the same packed row with a plain causal mask leaks attention
        leaky = pack_batch(samples, pad_id, capacity=4096, attn_implementation=attn)
        leaky.attention_mask = torch.ones_like(leaky.input_ids)
        diff = (per_sample_losses(model, leaky, len(samples)) - ref).abs().max()
        assert diff > 1e-3


def test_per_sample_sdpa_packs_one_unpadded_row_with_the_padded_losses_and_gradients(tiny_model, tok):
    """tf-train's packing under sdpa: one row, cu_seq_lens, attention run per sample."""
    import torch
    from transformers import AutoModelForCausalLM

    from tf_tools.training.attention import VARLEN, use_sdpa, use_varlen

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    samples = _toy_samples(tok)
    pad_id = tok.pad_token_id

    def losses_and_grad(batch):
        model.zero_grad()
        got = per_sample_losses(model, batch, len(samples))
        got.sum().backward()
        return got.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])

    ref, ref_grad = losses_and_grad(pad_batch(samples, pad_id))
    assert use_varlen(model) and model.config._attn_implementation == VARLEN
    row = pack_batch(samples, pad_id, capacity=64, attn_implementation=VARLEN)  # capacity unused
    assert row.input_ids.shape == (1, sum(len(s) for s in samples)) and row.attention_mask is None
    assert row.n_slots == row.n_tokens and row.cu_seq_lens.tolist()[-1] == row.n_tokens
    got, grad = losses_and_grad(row)
    assert torch.allclose(got, ref, atol=1e-4, rtol=0), (got - ref).abs().max()
    assert torch.allclose(grad, ref_grad, atol=1e-4, rtol=1e-3), (grad - ref_grad).abs().max()
    # teeth: the same row declared as one sample attends across samples
    row.cu_seq_lens = torch.tensor([0, row.n_tokens], dtype=torch.int32)
    with torch.no_grad():
        assert (per_sample_losses(model, row, len(samples)) - ref).abs().max() > 1e-3
    # and without cu_seq_lens (generation, a caller that forgot) it refuses rather than leaks
    row.cu_seq_lens = None
    with pytest.raises(UsageError, match="cu_seq_lens"):
        per_sample_losses(model, row, len(samples))
    use_sdpa(model)
    assert model.config._attn_implementation == "sdpa"


# ----------------------------------------------------------------------------- one bad record


class FlakyTokenizer:
    """The tiny model's tokenizer, except that it breaks (RuntimeError, not an InputError) on a
    conversation that holds BOOM: an unexpected tokenizer bug hit by one record."""

    def __init__(self, tok) -> None:
        self.tok = tok

    def __getattr__(self, name):
        return getattr(self.tok, name)

    def __call__(self, text, **kwargs):
        if "BOOM" in text:
            raise RuntimeError("offsets went missing")
        return self.tok(text, **kwargs)


def test_any_exception_while_tokenising_one_record_names_it_or_skips_it(tok):
    from tf_tools.records import JsonlReader

    def chat(answer: str, **extra) -> dict:
        return {"messages": [{"role": "user", "content": "q"},
                             {"role": "assistant", "content": answer}], **extra}

    records = [chat("8", kind="fused", k=1), chat("BOOM 8", kind="fused", k=2, id="boom"),
               chat("3 + 5 = 8", kind="rft", k=0)]
    lines = [f"line {i} of t.jsonl" for i in (1, 2, 3)]
    where = iter(lines)
    with pytest.raises(InputError) as err:
        load_samples(records, FlakyTokenizer(tok), DataConfig(), lambda: next(where))
    assert str(err.value) == "line 2 of t.jsonl: cannot train this record: RuntimeError: offsets went missing"
    assert err.value.hint and "--keep-going" in err.value.hint
    assert isinstance(err.value.__cause__, RuntimeError)  # for -vv
    where = iter(lines)
    reports: list[str] = []
    samples, stats = load_samples([dict(r) for r in records], FlakyTokenizer(tok), DataConfig(),
                                  lambda: next(where), keep_going=True, on_skip=reports.append)
    assert len(samples) == 2 and (stats.read, stats.kept, stats.bad) == (3, 2, 1)
    alone, _ = load_samples([records[0], records[2]], tok, DataConfig())  # the good ones, as usual
    assert [s.input_ids.tolist() for s in samples] == [s.input_ids.tolist() for s in alone]
    assert stats.kept_by == {"fused": {"1": 1}, "rft": {"0": 1}} and stats.skipped_by == {"fused": {"2": 1}}
    assert reports == ["line 2 of t.jsonl: RuntimeError: offsets went missing (skipped)"]
    # an unparsable line (JsonlReader under keep_going) is a bad record too
    import io

    text = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "8"}]}\n{"mess\n'
    reader = JsonlReader(["-"], keep_going=True, step="train", stdin=io.BytesIO(text))
    samples, stats = load_samples(reader, tok, DataConfig(), reader.where, keep_going=True)
    assert (stats.read, stats.kept, stats.bad) == (2, 1, 1) and stats.skipped_by == {"other": {"none": 1}}
