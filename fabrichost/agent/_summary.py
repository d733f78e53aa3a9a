"""One readable message for what went wrong with many replicas (pure).

A failure that hits many replicas at once (a host that died under 4,000 opening replicas) would
otherwise be reported once per replica: a 375 KB error line. :func:`summarize_reasons` reports
it once, with the count and the first few replicas::

    >>> closed = "could not be opened: the channel to host 26337 closed"
    >>> print(summarize_reasons([f"replica {n} {closed}" for n in (9, 7, 8, 10)]))
    4 replicas could not be opened: the channel to host 26337 closed (first: replica 7, 8, 9, …)

Strategy: a reason about one replica starts with ``replica <id> `` and says the rest in words
that do not name it; reasons whose rest is the same are one group. Other reasons are grouped
when they are equal.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

_ABOUT_ONE: Final = re.compile(r"replica (\d+) (.+)", re.DOTALL)
EXAMPLES: Final = 3  # replicas named in a group
MAX_GROUPS: Final = 5  # distinct reasons quoted; the others are counted
MAX_REASON: Final = 2000  # characters of one reason quoted (a stderr tail can be long)


def summarize_reasons(reasons: Iterable[str]) -> str:
    """``reasons`` (one per replica, in any order) as one message, most frequent first.

    Its length is bounded (about ``MAX_GROUPS`` times ``MAX_REASON`` characters) however many
    replicas failed, and it says how many replicas each reason hit.
    """
    groups: dict[str, list[str]] = {}  # the reason without its replica -> their ids
    for reason in reasons:
        match = _ABOUT_ONE.fullmatch(reason)
        key, subject = (match.group(2), match.group(1)) if match else ("\0" + reason, "")
        groups.setdefault(key, []).append(subject)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    parts = [_group(key, subjects) for key, subjects in ordered[:MAX_GROUPS]]
    if (rest := len(ordered) - MAX_GROUPS) > 0:
        others = sum(len(subjects) for _, subjects in ordered[MAX_GROUPS:])
        parts.append(f"and {rest:,} other reason(s) for {others:,} replica(s)")
    return "; ".join(parts)


def _group(key: str, subjects: list[str]) -> str:
    if key.startswith("\0"):  # not about one replica: said once
        return _clip(key[1:])
    if len(subjects) == 1:
        return _clip(f"replica {subjects[0]} {key}")
    ids = sorted(set(subjects), key=int)
    first = ", ".join(ids[:EXAMPLES]) + (", …" if len(ids) > EXAMPLES else "")
    return f"{len(subjects):,} replicas {_clip(key)} (first: replica {first})"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
