"""The structure checker: content models as data, and one function that checks a tree against them.

Usage::

    ROOT = Elem("Root", attrs=(Attr("Name", required=True),), content=seq(one(CHILD)))
    diagnostics = check_element(node, ROOT, "file.xml")

A content model is a sequence of particles (an element, a choice of elements or a wildcard, each
with a minimum and maximum count), an ``xs:all`` group (:class:`All`: each element at most once,
in any order), simple text (optionally an enumeration), empty, or :class:`Open` (XML Schema's
``anyType``: any attributes, children and text). The matcher is greedy, which is exact for the
Service Fabric schema because XML Schema demands deterministic content models (the "Unique
Particle Attribution" rule): at any point a child name selects at most one particle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from fabrichost.errors import Diagnostic
from fabrichost.manifest._xml import FABRIC_NAMESPACE, Node

UNBOUNDED: Final = 1 << 30
AttrKind = Literal["string", "nonempty", "boolean", "int", "long"]
_BOOLEANS: Final = frozenset({"true", "false", "1", "0"})
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
# The value spaces of xs:int and xs:long, checked even when the schema gives no range facet.
_RANGES: Final = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True, slots=True)
class Attr:
    """An attribute: required or not, its XML Schema type, enumeration, int range and pattern.

    ``pattern`` is an ``xs:pattern`` facet; the schema's patterns use only the syntax XML Schema
    and Python share (character classes and counts), and like XML Schema it must match the whole
    value.
    """

    name: str
    required: bool = False
    kind: AttrKind = "string"
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    pattern: str = ""


@dataclass(frozen=True, slots=True)
class Text:
    """Simple content: text and no child elements; ``enum`` restricts the text when given."""

    enum: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Open:
    """XML Schema's ``anyType``: any attributes, children and text, as the schema itself says.

    ``why`` names the schema construct that allows it (an element declared without a type, or
    the content an ``xs:any`` wildcard admits).
    """

    why: str


@dataclass(frozen=True, slots=True)
class Wildcard:
    """``xs:any namespace="##other"``: one element from a namespace other than the fabric one.

    ``processContents="lax"`` with no declaration for foreign elements means their content is
    not checked.
    """

    namespace: Literal["##other"] = "##other"

    @property
    def name(self) -> str:
        return "an element of another namespace"


@dataclass(frozen=True, slots=True)
class Particle:
    """``term`` (an element or a choice) occurring ``low`` to ``high`` times."""

    term: Elem | Choice | Wildcard
    low: int
    high: int

    def names(self) -> tuple[str, ...]:
        if isinstance(self.term, Choice):
            return tuple(e.name for e in self.term.alternatives)
        return (self.term.name,)

    def match(self, child: Node) -> Elem | None:
        """The declaration ``child`` takes when this particle accepts it, else None."""
        if isinstance(self.term, Wildcard):
            foreign = child.namespace not in (FABRIC_NAMESPACE, None)
            return _FOREIGN if foreign else None
        if child.namespace != FABRIC_NAMESPACE:
            return None
        if isinstance(self.term, Elem):
            return self.term if self.term.name == child.name else None
        return next((e for e in self.term.alternatives if e.name == child.name), None)


@dataclass(frozen=True, slots=True)
class Choice:
    alternatives: tuple[Elem, ...]


@dataclass(frozen=True, slots=True)
class All:
    """``xs:all``: each element at most once (``high`` is 1), in any order."""

    particles: tuple[Particle, ...]


Content = tuple[Particle, ...] | All | Text | Open


@dataclass(frozen=True, slots=True)
class Elem:
    """An element declaration. ``content=()`` is the empty content model."""

    name: str
    attrs: tuple[Attr, ...] = ()
    content: Content = ()
    any_attributes: bool = False


_FOREIGN: Final = Elem(
    "*", content=Open("xs:any namespace='##other' processContents='lax'"), any_attributes=True
)


def one(term: Elem | Choice | Wildcard) -> Particle:
    return Particle(term, 1, 1)


def check_element(node: Node, decl: Elem, file: str) -> list[Diagnostic]:
    """Check ``node`` and its subtree against ``decl``; every problem found is returned."""
    found: list[Diagnostic] = []
    _check(node, decl, file, found)
    return found


def _check(node: Node, decl: Elem, file: str, found: list[Diagnostic]) -> None:
    _check_attributes(node, decl, file, found)
    content = decl.content
    if isinstance(content, Text):
        _check_text(node, content, file, found)
        return
    if isinstance(content, Open):
        return
    if node.has_text:
        found.append(
            Diagnostic(
                file,
                node.line,
                f"element '{node.name}' may only contain elements, not text "
                f"(found {_preview(node.text)!r})",
            )
        )
    if isinstance(content, All):
        _check_all(node, content, file, found)
    else:
        _check_children(node, content, file, found)


def _check_text(node: Node, content: Text, file: str, found: list[Diagnostic]) -> None:
    if node.children:
        found.append(
            Diagnostic(
                file,
                node.children[0].line,
                f"element '{node.name}' holds text only; "
                f"unexpected element '{node.children[0].name}'",
            )
        )
    elif content.enum and node.text not in content.enum:
        found.append(
            Diagnostic(
                file,
                node.line,
                f"'{node.name}' must be one of {', '.join(content.enum)}; got {node.text!r}",
            )
        )


def _check_attributes(node: Node, decl: Elem, file: str, found: list[Diagnostic]) -> None:
    known = {a.name: a for a in decl.attrs}
    for key, value in node.attributes:
        attr = known.get(key)
        if attr is not None:
            problem = _attribute_problem(attr, value)
            if problem:
                found.append(Diagnostic(file, node.line, f"{node.name} {key}: {problem}"))
        # Namespaced attributes (xsi:schemaLocation and friends) are not the schema's business.
        elif not decl.any_attributes and not key.startswith("{"):
            expected = ", ".join(known) or "none"
            found.append(
                Diagnostic(
                    file,
                    node.line,
                    f"unexpected attribute '{key}' on {node.name} (allowed: {expected})",
                )
            )
    present = {key for key, _ in node.attributes}
    missing = [a.name for a in decl.attrs if a.required and a.name not in present]
    if missing:
        required = ", ".join(a.name for a in decl.attrs if a.required)
        found.extend(
            Diagnostic(
                file,
                node.line,
                f"{node.name} is missing the required attribute '{name}' (required: {required})",
            )
            for name in missing
        )


def _attribute_problem(attr: Attr, value: str) -> str | None:
    if attr.enum:
        return (
            None if value in attr.enum else f"expected one of {', '.join(attr.enum)}; got {value!r}"
        )
    if attr.kind == "nonempty":
        return None if value else "must not be empty"
    if attr.kind == "boolean":
        return None if value.strip() in _BOOLEANS else f"expected true or false; got {value!r}"
    if attr.kind in _RANGES:
        return _int_problem(attr, value)
    if attr.pattern and not re.fullmatch(attr.pattern, value):
        return f"expected a value matching {attr.pattern}; got {value!r}"
    return None


def _int_problem(attr: Attr, value: str) -> str | None:
    # fullmatch, not int(): Python's int() also takes "1_000", which XML Schema does not.
    if not _INTEGER.fullmatch(value.strip(" \t\r\n")):
        return f"expected an integer; got {value!r}"
    number = int(value)
    low, high = _RANGES[attr.kind]
    low = low if attr.minimum is None else attr.minimum
    high = high if attr.maximum is None else attr.maximum
    if number < low:
        return f"must be at least {low}; got {number}"
    if number > high:
        return f"must be at most {high}; got {number}"
    return None


def _check_children(
    node: Node, particles: tuple[Particle, ...], file: str, found: list[Diagnostic]
) -> None:
    index, count = 0, 0
    in_order = True
    for child in node.children:
        decl, start = None, (index, count)
        while in_order and index < len(particles):
            particle = particles[index]
            decl = particle.match(child)
            if decl is not None and count < particle.high:
                count += 1
                break
            decl = None
            if count < particle.low:
                break
            index, count = index + 1, 0
        if decl is None:
            if in_order:
                found.append(_unexpected(node, child, particles, *start, file))
            # After one misplaced child the order is lost; keep checking each remaining child
            # against its own declaration so that the other problems are still reported.
            in_order = False
            decl = _lookup(particles, child)
        if decl is not None:
            _check(child, decl, file, found)
    if in_order:
        for position in range(index, len(particles)):
            if (count if position == index else 0) < particles[position].low:
                names = " or ".join(particles[position].names())
                found.append(
                    Diagnostic(
                        file, node.line, f"{node.name} is missing a required element: {names}"
                    )
                )
                break


def _lookup(particles: tuple[Particle, ...], child: Node) -> Elem | None:
    return next((d for p in particles if (d := p.match(child)) is not None), None)


def _check_all(node: Node, content: All, file: str, found: list[Diagnostic]) -> None:
    seen: dict[str, int] = {}
    for child in node.children:
        decl = _lookup(content.particles, child)
        if decl is None or child.name in seen:
            names = [p.names()[0] for p in content.particles if p.names()[0] not in seen]
            wanted = ", ".join(names) if names else f"nothing more inside {node.name}"
            again = f" again (first at line {seen[child.name]})" if decl else ""
            found.append(
                Diagnostic(
                    file,
                    child.line,
                    f"element '{child.name}'{_where(child)} is not expected{again} in {node.name}; "
                    f"expected {wanted}",
                )
            )
        else:
            seen[child.name] = child.line
        if decl is not None:
            _check(child, decl, file, found)
    found.extend(
        Diagnostic(file, node.line, f"{node.name} is missing a required element: {name}")
        for particle in content.particles
        if particle.low and (name := particle.names()[0]) not in seen
    )


def _unexpected(
    node: Node,
    child: Node,
    particles: tuple[Particle, ...],
    index: int,
    count: int,
    file: str,
) -> Diagnostic:
    expected: list[str] = []
    for position in range(index, len(particles)):
        particle = particles[position]
        used = count if position == index else 0
        if used < particle.high:
            expected.extend(particle.names())
        if used < particle.low:
            break
    wanted = ", ".join(expected) if expected else f"nothing more inside {node.name}"
    return Diagnostic(
        file,
        child.line,
        f"element '{child.name}'{_where(child)} is not expected here in {node.name}; "
        f"expected {wanted}",
    )


def _where(child: Node) -> str:
    """The namespace of a child in another namespace than the fabric one, for messages."""
    return "" if child.namespace == FABRIC_NAMESPACE else f" (namespace {child.namespace!r})"


def _preview(text: str) -> str:
    text = text.strip(" \t\r\n")
    return text if len(text) <= 40 else text[:37] + "..."
