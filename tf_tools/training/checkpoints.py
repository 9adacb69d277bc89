"""The run folder: what it holds, when it may be reused, checkpoints, the loss log, the final model.

    runs/NAME/
      run.json          what this run is (model, data fingerprint, hyperparameters): --resume
                        refuses a folder whose run.json differs
      loss.jsonl        one line per optimizer step
      checkpoints/step-00000040/   accelerate's save_state (model, optimizer, scheduler, RNG of
                        every process) + trainer_state.json (data position, counters)
      final/            the trained model + tokenizer (save_pretrained): tf-sample -m runs/NAME/final;
                        with --lora-r: the adapter (peft), or with --merge the merged model
      adapter/          with --lora-r --merge: the adapter (peft's adapter_config.json +
                        adapter_model.safetensors)
      manifest.json     the manifest record tf-train printed

Checkpoints and the final model are written to ``NAME.tmp`` and renamed when complete, so a
run killed at any moment leaves only whole checkpoints; ``--resume`` takes the newest.
The loss log is cut back to the checkpoint's step on resume, so it ends up as the log of an
uninterrupted run. Only the main process writes; every process reads.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from tf_tools.errors import UsageError

RUN_FILE = "run.json"
LOSS_LOG = "loss.jsonl"
STATE_FILE = "trainer_state.json"
MANIFEST = "manifest.json"


class RunFolder:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.run_file = self.path / RUN_FILE
        self.loss_log = self.path / LOSS_LOG
        self.checkpoints = self.path / "checkpoints"
        self.final = self.path / "final"
        self.adapter = self.path / "adapter"
        self.manifest = self.path / MANIFEST

    # ----------------------------------------------------------------- reuse rules

    def status(self, resume: bool, overwrite: bool) -> str:
        """``new``, ``resume`` (continue), or ``overwrite`` (clear first); refuses otherwise.

        Read-only: every process may call it.
        """
        if resume and overwrite:
            raise UsageError("--resume and --overwrite exclude each other")
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"-o {self.path} is a file, not a run folder")
        if not self.path.exists() or not any(self.path.iterdir()):
            return "new"
        if not self.run_file.exists():
            raise UsageError(f"{self.path} is not empty and holds no tf-train run ({RUN_FILE}); "
                             "refusing to train into it", hint="give a new or empty -o folder")
        if resume:
            return "resume"
        if overwrite:
            return "overwrite"
        raise UsageError(f"{self.path} already holds a run",
                         hint="--resume continues it, --overwrite starts it again, or give "
                              "another -o")

    def clear(self) -> None:
        """--overwrite: remove the earlier run (a folder ``status`` accepted)."""
        for child in self.path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def identity(self) -> dict[str, Any] | None:
        if not self.run_file.exists():
            return None
        return json.loads(self.run_file.read_text())

    def check_same_run(self, identity: dict[str, Any]) -> None:
        """--resume: the folder must hold this run (same model, data, hyperparameters)."""
        old = self.identity() or {}
        diffs = [f"{k}: {old.get(k)!r} there, {v!r} now" for k, v in identity.items()
                 if old.get(k) != v]
        if diffs:
            raise UsageError(f"{self.path} holds a different run ({'; '.join(diffs[:4])})",
                             hint="--overwrite replaces it; or give another -o")

    def write_identity(self, identity: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.run_file, json.dumps(identity, indent=2) + "\n")

    # ----------------------------------------------------------------- checkpoints

    def checkpoint_dirs(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.checkpoints.is_dir():
            return []
        found = [p for p in self.checkpoints.iterdir()
                 if p.is_dir() and p.name.startswith("step-") and not p.name.endswith(".tmp")
                 and (p / STATE_FILE).exists()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def latest(self) -> Path | None:
        dirs = self.checkpoint_dirs()
        return dirs[-1] if dirs else None

    def save_checkpoint(self, accelerator: Any, step: int, state: dict[str, Any],
                        keep: int) -> Path:
        """accelerate's save_state into ``step-N.tmp``, then rename; keep the newest ``keep``."""
        final = self.checkpoints / f"step-{step:08d}"
        tmp = final.with_name(final.name + ".tmp")
        if accelerator.is_main_process:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            _atomic_write(tmp / STATE_FILE, json.dumps(state, indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in self.checkpoint_dirs()[:-keep] if keep > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()
        return final

    @staticmethod
    def read_state(checkpoint: Path) -> dict[str, Any]:
        return json.loads((checkpoint / STATE_FILE).read_text())

    # ----------------------------------------------------------------- loss log

    def trim_loss_log(self, step: int) -> None:
        """Keep the log lines of steps <= ``step`` (and drop a torn last line)."""
        if not self.loss_log.exists():
            return
        kept = []
        with open(self.loss_log, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    break
                if rec.get("step", 0) <= step:
                    kept.append(line)
        _atomic_write(self.loss_log, "".join(kept))

    # ----------------------------------------------------------------- final model

    def save_final(self, accelerator: Any, model: Any, tokenizer: Any, dtype: Any,
                   lora_settings: Any = None, merge: bool = False) -> Path:
        """The trained model as a plain Hugging Face folder (weights in ``dtype``); with LoRA
        the adapter, and with ``merge`` the merged model in final/ and the adapter beside."""
        from tf_tools.training import lora

        state_dict = accelerator.get_state_dict(model)  # gathers FSDP / ZeRO-3 shards
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            if lora_settings is not None:
                adapter_to = self.adapter if merge else self.final
                self._replace(adapter_to, lambda tmp: self._save_adapter(
                    unwrapped, state_dict, tokenizer, tmp))
            if lora_settings is None or merge:
                if lora_settings is not None:
                    state_dict = lora.merged_state_dict(state_dict, lora_settings.scaling)
                    unwrapped = unwrapped.get_base_model()
                self._replace(self.final, lambda tmp: self._save_model(
                    accelerator, unwrapped, state_dict, tokenizer, dtype, tmp))
        accelerator.wait_for_everyone()
        return self.final

    @staticmethod
    def _replace(path: Path, write: Any) -> None:
        """``write(tmp)`` into ``path.tmp``, then rename over ``path``."""
        tmp = path.with_name(path.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        write(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)

    @staticmethod
    def _save_model(accelerator: Any, model: Any, state_dict: dict[str, Any], tokenizer: Any,
                    dtype: Any, tmp: Path) -> None:
        state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
        model.config.use_cache = True
        model.save_pretrained(tmp, state_dict=state_dict, save_function=accelerator.save)
        _save_tokenizer(tokenizer, tmp)
        # save_pretrained records the dtype of the (float32) training weights; the files hold
        # ``dtype``, and loaders with dtype="auto" (vLLM) read it from here: both names, as
        # older transformers, vLLM and evaluation harnesses read ``torch_dtype``
        config = json.loads((tmp / "config.json").read_text())
        config["dtype"] = config["torch_dtype"] = str(dtype).replace("torch.", "")
        _atomic_write(tmp / "config.json", json.dumps(config, indent=2) + "\n")

    @staticmethod
    def _save_adapter(model: Any, state_dict: dict[str, Any], tokenizer: Any, tmp: Path) -> None:
        """peft's adapter folder (adapter_config.json names the base model) + the tokenizer."""
        model.save_pretrained(tmp, state_dict=state_dict)
        _save_tokenizer(tokenizer, tmp)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        _atomic_write(self.manifest, json.dumps(manifest, indent=2) + "\n")

    def read_manifest(self) -> dict[str, Any] | None:
        if not (self.manifest.exists() and self.final.exists()):
            return None
        return json.loads(self.manifest.read_text())


def _save_tokenizer(tokenizer: Any, folder: Path) -> None:
    """The tokenizer, its chat template also inside tokenizer_config.json: transformers 5
    writes it to chat_template.jinja only, where older transformers, vLLM builds and
    evaluation harnesses do not look."""
    tokenizer.save_pretrained(folder)
    template = getattr(tokenizer, "chat_template", None)
    config_path = folder / "tokenizer_config.json"
    if isinstance(template, str) and config_path.exists():
        config = json.loads(config_path.read_text())
        if config.get("chat_template") != template:
            config["chat_template"] = template
            _atomic_write(config_path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
