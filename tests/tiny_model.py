"""A tiny random Qwen2 chat model built offline, for tests and benchmarks.

hidden 64, 2 heads (head dim 32: vLLM-CPU needs >= 32), 2 layers; a byte-level BPE trained
on the fly with Qwen2's own pre-tokenizer (transformers forces ``Qwen2Tokenizer`` for qwen2
models, so any other split would give different ids in transformers and vLLM), and a
Qwen-style chat template. Loads in transformers and in vLLM (DESIGN §6).
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CORPUS = [
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "Tom has 3 apples and buys 5 more. How many apples does he have? 3 + 5 = 8, so \\boxed{8}.",
    "The answer is 42. Let me re-check the computation: 6 * 7 = 42.",
    "Wait, that answer does not hold up. Let me try again from the start.",
    "What is the sum of 12 and 30? The sum is 12 + 30 = 42.",
    "If x + 2 = 5 then x = 3. The final answer is \\frac{1}{2} or 0.5 or 50%.",
    "0123456789 + - * / = ( ) [ ] { } \\ ^ _ $ % , . ; : ! ? ' \" # @ & | < >",
    "system user assistant problem solution answer question reason step final",
]


def build_tiny_qwen2(dest: Path, seed: int = 0) -> Path:
    """Write the model folder at ``dest`` (idempotent) and return it."""
    dest = Path(dest)
    if (dest / "config.json").exists():
        return dest
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CORPUS * 20, trainer)
    model_json = bpe.to_str()
    import json

    state = json.loads(model_json)["model"]
    vocab = state["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token="<|im_end|>",
                               pad_token="<|endoftext|>", unk_token=None)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=32, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    model = Qwen2ForCausalLM(config).to(torch.float32)
    tmp = dest.with_name(dest.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    tmp.rename(dest)
    return dest


if __name__ == "__main__":
    import sys

    print(build_tiny_qwen2(Path(sys.argv[1])))
