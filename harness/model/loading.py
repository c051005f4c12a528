"""Load YAML specs into pydantic models, turning every problem into ``FILE:LINE: field: message``.

Every error is found before anything starts; all of them are reported at once (one line each) through
:class:`SpecError`, an :class:`InputError` (exit code 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from harness.errors import InputError

M = TypeVar("M", bound=BaseModel)


class SpecError(InputError):
    """One or more problems in a spec file; ``str()`` is one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def read_yaml(path: Path) -> Any:
    """Parse a YAML file keeping line numbers; raises SpecError for a missing file or bad syntax."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([f"{path}: file not found, expected a YAML file"]) from None
    except IsADirectoryError:
        raise SpecError([f"{path}: is a directory, expected a YAML file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"{path}: cannot read: {exc}"]) from None
    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise SpecError([f"{path}{line}: YAML syntax error: {problem}"]) from None
    except YAMLError as exc:
        raise SpecError([f"{path}: YAML syntax error: {str(exc).splitlines()[0]}"]) from None
    if doc is None:
        raise SpecError([f"{path}: file is empty, expected a YAML mapping"])
    if not isinstance(doc, dict):
        kind = "a list" if isinstance(doc, list) else f"a single value {doc!r}"
        raise SpecError([f"{path}:1: top level: expected a mapping of fields, got {kind}"])
    return doc


def line_of(doc: Any, loc: Sequence[int | str]) -> int | None:
    """1-based line of the deepest node of ``loc`` that exists in the parsed document."""
    line: int | None = None
    node = doc
    for key in loc:
        if isinstance(node, CommentedMap) and key in node:
            line = node.lc.key(key)[0] + 1
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            line = node.lc.item(key)[0] + 1
            node = node[key]
        elif isinstance(node, CommentedMap | CommentedSeq) and line is None:
            line = node.lc.line + 1
            break
        else:
            break
    return line


def _field(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "top level"


def format_errors(path: Path, doc: Any, error: ValidationError, model: type[BaseModel]) -> list[str]:
    problems: list[tuple[int, str]] = []
    for item in error.errors(include_url=False):
        loc = _file_loc(doc, [p for p in item["loc"] if not _is_tag(p)])
        line = line_of(doc, loc)
        where = f"{path}:{line}" if line else str(path)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = f"unknown field, expected one of: {_allowed_fields(model, loc[:-1], doc)}"
        elif item["type"] == "missing":
            message = "field required"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        else:
            message = message[0].lower() + message[1:]
            if "input" in item and not isinstance(item["input"], dict | list):
                message += f", got {item['input']!r}"
        problems.append((line or 0, f"{where}: {_field(loc)}: {message}"))
    return [text for _, text in sorted(problems, key=lambda p: p[0])]


def _file_loc(doc: Any, loc: Sequence[int | str]) -> list[int | str]:
    """``loc`` without the tags of unions discriminated by ``system`` (a composite topology's
    ``database.galera.settings`` is ``database.settings`` in the file)."""
    out: list[int | str] = []
    node = doc
    for part in loc:
        if (
            isinstance(node, dict)
            and isinstance(part, str)
            and part not in node
            and node.get("system") == part
        ):
            continue
        out.append(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return out


def _is_tag(part: int | str) -> bool:
    """Parts of an error location that name a validator or a union member, not a field of the file
    (``harness.model.faults`` tags its unions ``field=value``)."""
    return isinstance(part, str) and (part.startswith("function-") or "=" in part)


def _allowed_fields(model: type[BaseModel], parent: Sequence[int | str], doc: Any) -> str:
    annotation: Any = model
    node = doc
    for part in parent:
        if isinstance(part, int):
            annotation = _item_type(annotation)
        elif (value := _value_type(annotation)) is not None:
            annotation = value
        else:
            target = _resolve(annotation, node)
            if target is None or part not in target.model_fields:
                return "see the documentation"
            annotation = target.model_fields[part].annotation
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    target = _resolve(annotation, node)
    if target is None:
        return "see the documentation"
    return ", ".join(field.alias or name for name, field in target.model_fields.items())


def _value_type(annotation: Any) -> Any:
    """``dict[K, V]`` (possibly inside Optional/Annotated) → ``V``; None for anything else."""
    from typing import get_args, get_origin

    for candidate in [annotation, *get_args(annotation)]:
        if get_origin(candidate) is dict:
            return get_args(candidate)[1]
    return None


def _item_type(annotation: Any) -> Any:
    """``list[X]`` (possibly inside Optional/Annotated) → ``X``."""
    from typing import get_args, get_origin

    for candidate in [annotation, *get_args(annotation)]:
        if get_origin(candidate) is list:
            return get_args(candidate)[0]
    return None


def _resolve(annotation: Any, node: Any) -> type[BaseModel] | None:
    """The model ``annotation`` stands for at ``node``: itself, or the member of a union that ``node`` is
    (the one whose ``kind`` it names, else the one sharing most of its keys)."""
    from typing import get_args, get_origin

    found: list[type[BaseModel]] = []
    candidates = [annotation]
    while candidates:
        candidate = candidates.pop(0)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            found.append(candidate)
        elif get_origin(candidate) not in (list, dict) and get_args(candidate):
            candidates.extend(get_args(candidate))
    if len(found) <= 1 or not isinstance(node, dict):
        return found[0] if found else None
    for member in found:
        kind = member.model_fields.get("kind")
        if kind is not None and node.get("kind") is not None and kind.default == node.get("kind"):
            return member
    return max(found, key=lambda m: len(set(m.model_fields) & set(node)))


def load_model(path: Path, model: type[M], doc: Any | None = None) -> M:
    """Read ``path`` and validate it as ``model``; raises SpecError listing every problem."""
    path = Path(path)
    if doc is None:
        doc = read_yaml(path)
    try:
        return model.model_validate(_plain(doc), context={"path": path})
    except ValidationError as exc:
        raise SpecError(format_errors(path, doc, exc, model)) from None


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node
