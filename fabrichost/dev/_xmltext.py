"""Set one attribute of one element in a manifest's text, leaving every other byte as it is
(pure: no IO).

The staged copy of a package differs from the user's files only in its version attributes, so
its lines are the user's lines: whatever the agent says about the copy points at the right line
of the right file. A parser's round trip would reformat the file; this edits the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from xml.sax.saxutils import escape, unescape

if TYPE_CHECKING:
    from collections.abc import Iterable

# Text where a start tag is not markup: comments, CDATA sections, processing instructions.
_NOT_MARKUP: Final = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>", re.DOTALL)
_START_TAG: Final = re.compile(
    r"<(?:[\w.-]+:)?(?P<name>[\w.-]+)"
    r"(?P<attrs>(?:\s+[\w:.-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*/?>"
)
_ATTRIBUTE: Final = re.compile(r"(?P<name>[\w:.-]+)\s*=\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)')")
_ENTITIES: Final = {"&quot;": '"', "&apos;": "'"}
_QUOTES: Final = {'"': "&quot;", "'": "&apos;"}


@dataclass(frozen=True, slots=True)
class AttributeEdit:
    """Set ``attribute`` to ``value`` on the one ``element`` whose attribute ``key[0]`` is
    ``key[1]`` (or the one ``element`` at all, without a key)."""

    element: str
    attribute: str
    value: str
    key: tuple[str, str] | None = None


class EditError(ValueError):
    """An edit that matched no element, or more than one, or an element without the
    attribute."""


def apply_edits(text: str, edits: Iterable[AttributeEdit]) -> str:
    """``text`` with every edit applied, one after the other."""
    for edit in edits:
        text = _apply(text, edit)
    return text


def _apply(text: str, edit: AttributeEdit) -> str:
    hidden = [m.span() for m in _NOT_MARKUP.finditer(text)]
    found: list[tuple[int, int]] = []
    for tag in _START_TAG.finditer(text):
        if tag["name"] != edit.element or any(a <= tag.start() < b for a, b in hidden):
            continue
        attributes = {
            a["name"]: (tag.start("attrs"), a)
            for a in _ATTRIBUTE.finditer(tag["attrs"])
        }
        if edit.key is not None:
            keyed = attributes.get(edit.key[0])
            if keyed is None or _value(keyed[1]) != edit.key[1]:
                continue
        target = attributes.get(edit.attribute)
        if target is None:
            raise EditError(f"<{edit.element}> has no attribute {edit.attribute}")
        offset, match = target
        group = "dq" if match["dq"] is not None else "sq"
        found.append((offset + match.start(group), offset + match.end(group)))
    if len(found) != 1:
        which = f" {edit.key[0]}={edit.key[1]!r}" if edit.key else ""
        raise EditError(f"expected one <{edit.element}{which}>, found {len(found)}")
    start, end = found[0]
    return text[:start] + escape(edit.value, _QUOTES) + text[end:]


def _value(match: re.Match[str]) -> str:
    raw = match["dq"] if match["dq"] is not None else match["sq"]
    return unescape(raw, _ENTITIES)
