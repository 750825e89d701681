"""Every spec error in one go: parse, note the error, take the faulty field out, parse again.

Why: a researcher fixing a spec should not have to run `validate` once per typo. The checks stay the
plain fail-fast readers of `_reader`/`_sections`; this loop only repairs the data between attempts by
deleting the field an error names (an unknown key, a bad value, an unknown method in the list), so
that the next attempt can reach the next independent mistake.

What it will not guess: an error about a field it cannot delete (a whole-file problem, a field that is
not in the data), or one about a field already reported (a required field whose bad value was taken
out, a cascade) ends the search; the errors found so far are what is reported, in file order.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any, TypeVar

from tuner.spec.model import SpecError

MAX_ERRORS = 20
# the readers' own wording (`_reader.did_you_mean`, `_Block`): a near miss is repaired by taking the suggestion
_SUGGESTED = re.compile(r"did you mean ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\?")
_UNKNOWN_KEY = "unknown key "

T = TypeVar("T")


class SpecErrors(SpecError):
    """Several independent spec errors: one line each (`str` joins them with newlines).

    It is a SpecError whose fields are the first error's, so callers that read one error keep working."""

    def __init__(self, errors: list[SpecError]) -> None:
        first = errors[0]
        super().__init__(first.file, first.line, first.field, first.problem)
        self.errors = errors
        self.args = ("\n".join(str(e) for e in errors),)

    def __str__(self) -> str:
        return self.args[0]


def _parent(data: Any, field: str) -> tuple[Any, str] | None:
    """(the node holding `field`'s last part, that part) for a dotted field; None where the path is not there."""
    parts = field.split(".") if field else []
    if not parts:
        return None
    node = data
    for part in parts[:-1]:
        node = _child(node, part)
        if node is None:
            return None
    return node, parts[-1]


def _repair(data: Any, exc: SpecError) -> bool:
    """Change the data so the next attempt passes this error; False where that is not safe to guess.

    A near miss takes its suggestion (a key is renamed, a value replaced), so what follows it is checked
    as the user meant it; any other faulty field is deleted (its default applies). A list item without a
    suggestion (an unknown method) is not deleted: what depends on it would fail for no fault of its own."""
    match = _SUGGESTED.search(exc.problem)
    suggestion = ast.literal_eval(match.group(1)) if match else None
    found = _parent(data, exc.field)
    if found is None:
        return False
    parent, last = found
    if isinstance(parent, dict) and last in parent:
        if suggestion is not None and exc.problem.startswith(_UNKNOWN_KEY):
            if suggestion in parent:
                return _delete(data, exc.field)
            parent[suggestion] = parent.pop(last)
            return True
        if suggestion is not None:
            parent[last] = suggestion
            return True
        return _delete(data, exc.field)
    if isinstance(parent, list) and suggestion is not None and last.isdigit() and int(last) < len(parent):
        parent[int(last)] = suggestion
        return True
    return False


def _delete(data: Any, field: str) -> bool:
    """Remove `field` (dotted, list items by index) from the spec's data; False where it is not there."""
    found = _parent(data, field)
    if found is None:
        return False
    node, last = found
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        index = int(last)
        del node[index]
        lines = getattr(node, "item_lines", None)
        if lines is not None and index < len(lines):
            del lines[index]
        return True
    return False


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None


def _related(field: str, seen: list[str]) -> bool:
    """Is `field` one already reported, inside one, or around one (a cascade of a deletion)?

    A field with a note (`parameters.lr (default of method sgd)`) is compared by its dotted path."""
    field = field.split(" ", 1)[0]
    seen = [s.split(" ", 1)[0] for s in seen]
    return any(field == s or field.startswith(s + ".") or s.startswith(field + ".") for s in seen)


def parse_all(data: Any, parse: Callable[[Any], T], explain: Callable[[SpecError], SpecError]) -> T:
    """`parse(data)`, or a SpecError listing every independent error (`explain` words each one)."""
    found: list[SpecError] = []
    while True:
        try:
            spec = parse(data)
        except SpecError as exc:
            if found and (not exc.field or exc.problem == "is required"
                          or _related(exc.field, [e.field for e in found])):
                break  # maybe a cascade of an earlier repair: stop with what is certain
            found.append(explain(exc))
            if len(found) >= MAX_ERRORS or not _repair(data, exc):
                break
            continue
        except Exception:
            if not found:
                raise
            break  # the repaired data broke something the original did not reach: report what was found
        if not found:
            return spec
        break
    if len(found) == 1:
        raise found[0]
    found.sort(key=lambda e: (e.line is None, e.line or 0))
    raise SpecErrors(found)
