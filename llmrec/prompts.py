"""Prompts are versioned data files in ``prompts/<task>/v<N>.toml``.

Rendering is strict: a missing or unknown variable is an error, and every rendered text carries
``task@version`` so outputs can say which prompt made them. ``str.format`` fields are the syntax
(a well-known, tiny language); this module only adds the strictness and the versioning.
"""

from __future__ import annotations

import string
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from llmrec.errors import ConfigError
from llmrec.resources import prompts_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROMPTS_DIR = prompts_dir()


@dataclass(frozen=True)
class PromptTemplate:
    task: str
    version: int
    variables: tuple[str, ...]
    template: str
    system: str = ""

    @property
    def ref(self) -> str:
        return f"{self.task}@{self.version}"

    def render(self, drop_empty_lines: bool = False, **values: object) -> str:
        """Fill the template; every declared variable must be given and nothing else."""
        missing = sorted(set(self.variables) - values.keys())
        unknown = sorted(values.keys() - set(self.variables))
        if missing or unknown:
            raise ConfigError(
                f"prompt {self.ref}: missing variables {missing or '[]'}, unknown variables {unknown or '[]'}; "
                "pass exactly the variables the template declares"
            )
        text = self.template.strip("\n")
        if drop_empty_lines:
            kept = []
            for line in text.splitlines():
                fields = [f for _, f, _, _ in string.Formatter().parse(line) if f]
                if fields and all(str(values[f]).strip() == "" for f in fields):
                    continue
                kept.append(line)
            text = "\n".join(kept)
        return text.format(**{k: "" if v is None else v for k, v in values.items()}).strip()

    def messages(self, **values: object) -> list[dict[str, str]]:
        """Chat messages: the rendered system prompt (when the template has one) and the user turn."""
        user = self.render(**values)
        fields = {f for _, f, _, _ in string.Formatter().parse(self.system) if f}
        system = self.system.format(**{k: values[k] for k in fields}).strip()
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def _check_fields(tpl: PromptTemplate, path: Path) -> None:
    used = {f for part in (tpl.template, tpl.system) for _, f, _, _ in string.Formatter().parse(part) if f}
    if used != set(tpl.variables):
        raise ConfigError(
            f"prompt file {path}: template uses {sorted(used)} but declares {sorted(tpl.variables)}; make them agree"
        )


@lru_cache(maxsize=64)
def load_prompt(task: str, version: int | None = None, prompts_dir: Path = PROMPTS_DIR) -> PromptTemplate:
    """Load ``prompts/<task>/v<version>.toml``; the highest version when ``version`` is None."""
    folder = prompts_dir / task
    if version is None:
        versions = sorted(int(p.stem[1:]) for p in folder.glob("v*.toml") if p.stem[1:].isdigit())
        if not versions:
            raise ConfigError(f"no prompt templates for task {task!r} in {folder}; check the prompts folder")
        version = versions[-1]
    path = folder / f"v{version}.toml"
    if not path.is_file():
        raise ConfigError(f"prompt {task}@{version} not found at {path}; check the task name and version")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    tpl = PromptTemplate(
        task=data.get("task", task),
        version=int(data.get("version", version)),
        variables=tuple(data.get("variables", ())),
        template=data["template"],
        system=data.get("system", ""),
    )
    _check_fields(tpl, path)
    return tpl


def load_prompt_ref(ref: str) -> PromptTemplate:
    """The template a reference names: ``task@version``, or ``task`` for its highest version (the inverse of
    ``PromptTemplate.ref``)."""
    task, _, version = ref.partition("@")
    return load_prompt(task, int(version) if version else None)
