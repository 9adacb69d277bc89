"""tf-sample's core: prompts, per-sample seeds, and the vLLM and transformers engines."""
