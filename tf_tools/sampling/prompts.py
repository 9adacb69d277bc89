"""Turn problem records into prompts: the model's chat template, or a template file.

Also maps real files' field names onto the trajectory contract (``problem``, ``answer``,
``id``): GSM8K ``question``/``answer``, MATH ``problem``/``solution``, DeepMath
``question``/``final_answer``. A record without an id gets a deterministic one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tf_tools.errors import InputError, UsageError
from tf_tools.records import Record, content_id
from tf_tools.schema import DEFAULT_SYSTEM

__all__ = ["DEFAULT_SYSTEM", "FieldMap", "PromptBuilder", "normalize_problem"]
PROBLEM_KEYS = ("problem", "question", "prompt", "input")
ANSWER_KEYS = ("answer", "final_answer", "expected_answer", "solution", "target", "gt")


@dataclass(frozen=True)
class FieldMap:
    problem_key: str | None = None  # None: the first of PROBLEM_KEYS present
    answer_key: str | None = None
    id_key: str = "id"


def normalize_problem(rec: Record, fields: FieldMap) -> Record:
    """The record with ``id``, ``problem`` and ``answer`` set from the mapped fields."""
    pkey = fields.problem_key or next((k for k in PROBLEM_KEYS if k in rec), None)
    if pkey is None or pkey not in rec:
        wanted = fields.problem_key or "/".join(PROBLEM_KEYS)
        raise InputError(f"problem record has no {wanted!r} field",
                         hint="name the problem text with --problem-key")
    if not isinstance(rec[pkey], str) or not rec[pkey].strip():
        raise InputError(f"field {pkey!r} is not a non-empty string")
    out = dict(rec)
    out["problem"] = rec[pkey]
    akey = fields.answer_key or next((k for k in ANSWER_KEYS if k in rec), None)
    if akey is not None and akey in rec:
        out["answer"] = rec[akey]
    elif fields.answer_key:
        raise InputError(f"problem record has no {fields.answer_key!r} field")
    rid = rec.get(fields.id_key)
    out["id"] = rid if rid is not None else content_id(rec, [pkey, akey or ""])
    return out


class PromptBuilder:
    """Chat-template prompts (with an optional system message) or ``--template FILE``.

    A template file is plain text with ``{problem}`` where the problem goes (for base
    models without a chat template). ``served``: no tokenizer here; a prompt is the chat
    conversation (the server applies its model's template) or, with a template, its text.
    """

    def __init__(self, tokenizer: Any, system: str | None = DEFAULT_SYSTEM,
                 template: str | None = None, served: bool = False) -> None:
        self.tokenizer = tokenizer
        self.system = system
        self.template = template
        self.served = served
        # served: the server applies its chat template, or the prompt is the template's text
        if not served and template is None and not getattr(tokenizer, "chat_template", None):
            raise UsageError("this model's tokenizer has no chat template",
                             hint="give a prompt template with --template FILE ({problem} marks the spot)")
        if template is not None and "{problem}" not in template:
            raise UsageError("--template must contain {problem}")

    def messages(self, problem: str) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": problem}]

    def text(self, problem: str) -> str:
        if self.template is not None:
            return self.template.replace("{problem}", problem)
        return self.tokenizer.apply_chat_template(self.messages(problem), tokenize=False,
                                                  add_generation_prompt=True)

    def prompt(self, problem: str) -> list[int] | list[dict[str, str]] | str:
        """What the engine takes: token ids, or for a served model the conversation (chat
        endpoint) or the template's text (completions endpoint)."""
        if not self.served:
            return self.token_ids(problem)
        return self.messages(problem) if self.template is None else self.text(problem)

    def token_ids(self, problem: str) -> list[int]:
        # the template already holds the special tokens: do not add BOS twice
        add_special = self.template is not None
        return list(self.tokenizer.encode(self.text(problem), add_special_tokens=add_special))
