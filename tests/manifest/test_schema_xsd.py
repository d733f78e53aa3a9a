"""The structure rules agree with the real schema, element by element.

The schema (``ServiceFabricServiceModel.xsd``, in ``shared/sfcorpus/schema`` beside the
repository) is read here with the standard library, independently of
``tools/gen_manifest_schema.py`` that wrote the rules: from each of the four roots, every element
the schema allows is paired with its rule by path, and their attributes (name, required, type,
enumeration, range, pattern), whether they hold text, and their children (names, order and
counts) must be the same. An element, attribute or particle on one side only is a difference.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Final

import pytest

from fabrichost.manifest._schema import ROOTS
from fabrichost.manifest._schema_rules import (
    UNBOUNDED,
    All,
    Attr,
    Choice,
    Elem,
    Open,
    Particle,
    Text,
    Wildcard,
)

SCHEMA: Final = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "sfcorpus"
    / "schema"
    / "ServiceFabricServiceModel.xsd"
)
XS: Final = "{http://www.w3.org/2001/XMLSchema}"
INF: Final = UNBOUNDED
needs_schema = pytest.mark.skipif(not SCHEMA.is_file(), reason=f"schema not found at {SCHEMA}")

# Schema-side summaries: an attribute as (required, kind, enum, minimum, maximum, pattern); a
# particle as (names, low, high); content as ("text", enum), ("seq", particles),
# ("all", particles) or ("any", ...).
AttrShape = tuple[bool, str, tuple[str, ...], int | None, int | None, str]
Shape = tuple[str, tuple[tuple[frozenset[str], int, int], ...] | tuple[str, ...]]
_KINDS: Final = {
    "xs:string": "string",
    "xs:anyURI": "string",
    "xs:boolean": "boolean",
    "xs:int": "int",
    "xs:long": "long",
}


@dataclasses.dataclass
class Facets:
    """A simple type: its kind (as ``Attr.kind`` names them) and facets."""

    kind: str
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    pattern: str = ""

    def shape(self, required: bool) -> AttrShape:
        return (required, self.kind, self.enum, self.minimum, self.maximum, self.pattern)


class XsdReader:
    """Just enough of XML Schema to read the Service Fabric schema; fails on anything else."""

    def __init__(self, path: Path) -> None:
        self.root = ET.parse(path).getroot()
        self.globals: dict[tuple[str, str], ET.Element] = {
            (node.tag.removeprefix(XS), node.attrib["name"]): node
            for node in self.root
            if "name" in node.attrib
        }

    def find(self, kind: str, name: str) -> ET.Element:
        return self.globals[(kind, name)]

    @staticmethod
    def parts(node: ET.Element) -> list[ET.Element]:
        return [c for c in node if c.tag != XS + "annotation"]

    # attributes ----------------------------------------------------------------------------

    def simple(self, type_name: str | None, inline: ET.Element | None) -> Facets:
        if inline is None:
            if type_name is None:
                return Facets("string")  # xs:anySimpleType
            if type_name.startswith("xs:"):
                return Facets(_KINDS[type_name])
            inline = self.find("simpleType", type_name)
        (restriction,) = self.parts(inline)
        assert restriction.tag == XS + "restriction", restriction.tag
        found = self.simple(restriction.get("base"), None)
        found.enum = tuple(f.attrib["value"] for f in restriction.iter(XS + "enumeration"))
        for facet in self.parts(restriction):
            name, value = facet.tag.removeprefix(XS), facet.attrib["value"]
            if name == "minLength" and found.kind == "string" and int(value) > 0:
                found.kind = "nonempty"
            elif name == "minInclusive":
                found.minimum = int(value)
            elif name == "maxInclusive":
                found.maximum = int(value)
            elif name == "pattern":
                found.pattern = value
        return found

    def attributes(self, owner: ET.Element) -> tuple[dict[str, AttrShape], bool]:
        found: dict[str, AttrShape] = {}
        anything = False
        for node in self.parts(owner):
            tag = node.tag.removeprefix(XS)
            if tag == "attribute":
                facets = self.simple(node.get("type"), node.find(XS + "simpleType"))
                found[node.attrib["name"]] = facets.shape(node.get("use") == "required")
            elif tag == "attributeGroup":
                more, any_more = self.attributes(self.find("attributeGroup", node.attrib["ref"]))
                found.update(more)
                anything |= any_more
            elif tag == "anyAttribute":
                anything = True
        return found, anything

    # content -------------------------------------------------------------------------------

    @staticmethod
    def occurs(node: ET.Element) -> tuple[int, int]:
        high = node.get("maxOccurs", "1")
        return int(node.get("minOccurs", "1")), INF if high == "unbounded" else int(high)

    def particles(self, node: ET.Element) -> list[tuple[list[ET.Element], int, int]]:
        """``node`` as a list of (element declarations, low, high) in sequence."""
        tag = node.tag.removeprefix(XS)
        low, high = self.occurs(node)
        if tag == "element":
            return [([node], low, high)]
        if tag == "any":
            return [([node], low, high)]
        if tag == "group":
            (group,) = self.parts(self.find("group", node.attrib["ref"]))
            return self.particles(group)
        inner = [p for item in self.parts(node) for p in self.particles(item)]
        if tag == "sequence" and (low, high) == (1, 1):
            return inner
        if tag == "sequence" and len(inner) > 1:
            # (A? B?)* is (A | B)*: only exact when every item may be absent.
            assert high == INF, node.attrib
            assert all(lo == 0 for _, lo, _ in inner), node.attrib
            return [([d for decls, _, _ in inner for d in decls], 0, INF)]
        # A choice (or a one-item sequence) counts its alternatives together.
        most = (
            INF
            if high == INF or any(h == INF for _, _, h in inner)
            else high * max(h for _, _, h in inner)
        )
        if tag == "choice" and high == 1 and len(inner) > 1:
            assert all(h == 1 for _, _, h in inner), f"choice once of repeating items {inner}"
        return [
            (
                [d for decls, _, _ in inner for d in decls],
                low * min(lo for _, lo, _ in inner),
                min(most, INF),
            )
        ]

    def element_type(self, node: ET.Element) -> tuple[ET.Element | None, ET.Element]:
        """(complex type or None for simple content, the element's own declaration)."""
        if "ref" in node.attrib:
            node = self.find("element", node.attrib["ref"])
        inline = node.find(XS + "complexType")
        if inline is not None:
            return inline, node
        type_name = node.get("type")
        if type_name and ("complexType", type_name) in self.globals:
            return self.find("complexType", type_name), node
        return None, node

    def complex(
        self, ctype: ET.Element
    ) -> tuple[dict[str, AttrShape], bool, str, list[tuple[list[ET.Element], int, int]]]:
        """Attributes, anyAttribute, content kind ("seq", "all", "text") and particles."""
        attrs, anything = self.attributes(ctype)
        for derived in self.parts(ctype):
            if derived.tag == XS + "simpleContent":
                (extension,) = self.parts(derived)
                more, any_more = self.attributes(extension)
                return {**attrs, **more}, anything or any_more, "text", []
            if derived.tag == XS + "complexContent":
                (extension,) = self.parts(derived)
                assert extension.tag == XS + "extension"
                b_attrs, b_any, _, b_particles = self.complex(
                    self.find("complexType", extension.attrib["base"])
                )
                more, any_more = self.attributes(extension)
                added = [
                    p
                    for group in self.parts(extension)
                    if group.tag.removeprefix(XS) in ("sequence", "choice", "group")
                    for p in self.particles(group)
                ]
                return (
                    {**b_attrs, **attrs, **more},
                    b_any or anything or any_more,
                    "seq",
                    b_particles + added,
                )
        groups = [
            g
            for g in self.parts(ctype)
            if g.tag.removeprefix(XS) in ("sequence", "choice", "group", "all")
        ]
        if not groups:
            return attrs, anything, "seq", []
        (group,) = groups
        if group.tag == XS + "all":
            return attrs, anything, "all", [([e], *self.occurs(e)) for e in self.parts(group)]
        return attrs, anything, "seq", self.particles(group)


def _rule_attr(attr: Attr) -> AttrShape:
    return (attr.required, attr.kind, attr.enum, attr.minimum, attr.maximum, attr.pattern)


def _rule_particles(rule: Elem) -> list[tuple[list[Elem | Wildcard], int, int]]:
    content = rule.content
    particles = content.particles if isinstance(content, All) else content
    assert isinstance(particles, tuple)
    found: list[tuple[list[Elem | Wildcard], int, int]] = []
    for particle in particles:
        term = particle.term
        decls: list[Elem | Wildcard] = (
            list(term.alternatives) if isinstance(term, Choice) else [term]
        )
        found.append((decls, particle.low, particle.high))
    return found


def differences(xsd: XsdReader, rules: dict[str, Elem]) -> list[str]:
    """Every difference between the schema and ``rules``, each naming the element's path."""
    found: list[str] = []
    schema_roots = {"ApplicationManifest", "ServiceManifest", "Settings", "Application"}
    for name in sorted(schema_roots | set(rules)):
        if name not in rules:
            found.append(f"{name}: a root of the schema without a rule")
        elif name not in schema_roots:
            found.append(f"{name}: a rule for a root the schema does not declare")
        else:
            _compare(xsd, xsd.find("element", name), rules[name], name, found)
    return found


def _compare(xsd: XsdReader, node: ET.Element, rule: Elem, path: str, found: list[str]) -> None:
    ctype, decl = xsd.element_type(node)
    if ctype is None:  # simple content: text, maybe an enumeration
        facets = xsd.simple(decl.get("type"), decl.find(XS + "simpleType"))
        expected_text = facets.enum
        if not isinstance(rule.content, Text) or rule.content.enum != expected_text:
            found.append(
                f"{path}: schema says text {expected_text or ''}, rule says {rule.content}"
            )
        if rule.attrs or rule.any_attributes:
            found.append(f"{path}: schema declares no attributes, the rule has some")
        return
    attrs, anything, kind, particles = xsd.complex(ctype)
    _compare_attributes(attrs, anything, rule, path, found)
    if kind == "text":
        if rule.content != Text():
            found.append(f"{path}: schema says text, rule says {type(rule.content).__name__}")
        return
    is_all = isinstance(rule.content, All)
    if (kind == "all") != is_all or isinstance(rule.content, Text | Open):
        found.append(f"{path}: schema content is {kind}, rule is {type(rule.content).__name__}")
        return
    _compare_particles(xsd, particles, _rule_particles(rule), path, found)


def _compare_attributes(
    attrs: dict[str, AttrShape], anything: bool, rule: Elem, path: str, found: list[str]
) -> None:
    mine = {a.name: _rule_attr(a) for a in rule.attrs}
    if len(mine) != len(rule.attrs):
        found.append(f"{path}: an attribute is declared twice in the rule")
    for name in sorted(set(attrs) | set(mine)):
        if name not in mine:
            found.append(f"{path}: attribute '{name}' of the schema has no rule")
        elif name not in attrs:
            found.append(f"{path}: attribute '{name}' of the rule is not in the schema")
        elif attrs[name] != mine[name]:
            found.append(
                f"{path}: attribute '{name}' (required, kind, enum, min, max, pattern): "
                f"schema {attrs[name]}, rule {mine[name]}"
            )
    if anything != rule.any_attributes:
        found.append(f"{path}: xs:anyAttribute is {anything} in the schema, {rule.any_attributes}")


def _name(decl: ET.Element) -> str:
    if decl.tag == XS + "any":
        return "##other" if decl.get("namespace") == "##other" else "##any"
    return decl.get("name") or decl.attrib["ref"]


def _compare_particles(
    xsd: XsdReader,
    schema: list[tuple[list[ET.Element], int, int]],
    rules: list[tuple[list[Elem | Wildcard], int, int]],
    path: str,
    found: list[str],
) -> None:
    def names(decls: list[Elem | Wildcard]) -> list[str]:
        return ["##other" if isinstance(d, Wildcard) else d.name for d in decls]

    schema_seq = [([_name(d) for d in decls], lo, hi) for decls, lo, hi in schema]
    rule_seq = [(names(decls), lo, hi) for decls, lo, hi in rules]
    if schema_seq != rule_seq:
        found.append(
            f"{path}: children (names, min, max) are {schema_seq} in the schema, "
            f"{rule_seq} in the rules"
        )
        return
    for (decls, _, _), (rule_decls, _, _) in zip(schema, rules, strict=True):
        for decl, rule in zip(decls, rule_decls, strict=True):
            if isinstance(rule, Wildcard):
                if decl.tag != XS + "any":
                    found.append(f"{path}: a wildcard in the rules, {_name(decl)} in the schema")
                continue
            _compare(xsd, decl, rule, f"{path}/{rule.name}", found)


@pytest.fixture(scope="module")
def xsd() -> XsdReader:
    if not SCHEMA.is_file():
        pytest.skip(f"schema not found at {SCHEMA}")
    return XsdReader(SCHEMA)


@needs_schema
def test_the_rules_are_the_schema(xsd: XsdReader) -> None:
    problems = differences(xsd, dict(ROOTS))
    assert not problems, "\n".join(problems)


@needs_schema
def test_the_comparison_walks_every_element(xsd: XsdReader) -> None:
    # Guards the guard: the walk reaches deep, rarely used parts of the schema.
    seen: list[str] = []

    def walk(rule: Elem, path: str) -> None:
        seen.append(path)
        if isinstance(rule.content, Text | Open):
            return
        for decls, _, _ in _rule_particles(rule):
            for decl in decls:
                if isinstance(decl, Elem):
                    walk(decl, f"{path}/{decl.name}")

    for name, rule in ROOTS.items():
        walk(rule, name)
    assert (
        "ApplicationManifest/ServiceManifestImport/Policies/ContainerHostPolicies/PortBinding"
        in seen
    )
    assert "ApplicationManifest/Certificates/EndpointCertificate" in seen
    assert "ServiceManifest/Diagnostics/ETW/ProviderGuids/ProviderGuid" in seen
    assert len(seen) > 250


# ---- the comparison fails on a rule removed or changed on purpose ---------------------------


def _edit(rule: Elem, path: list[str], change: object) -> Elem:
    """``rule`` with the element at ``path`` (names below ``rule``) replaced by ``change(it)``."""
    if not path:
        return change(rule)  # type: ignore[operator,no-any-return]
    content = rule.content
    particles = content.particles if isinstance(content, All) else content
    assert isinstance(particles, tuple)
    edited: list[Particle] = []
    for particle in particles:
        term = particle.term
        if isinstance(term, Elem) and term.name == path[0]:
            term = _edit(term, path[1:], change)
        elif isinstance(term, Choice) and any(e.name == path[0] for e in term.alternatives):
            term = Choice(
                tuple(
                    _edit(e, path[1:], change) if e.name == path[0] else e
                    for e in term.alternatives
                )
            )
        edited.append(dataclasses.replace(particle, term=term))
    new_content = All(tuple(edited)) if isinstance(content, All) else tuple(edited)
    return dataclasses.replace(rule, content=new_content)


_PORT_BINDING: Final = ["ServiceManifestImport", "Policies", "ContainerHostPolicies", "PortBinding"]
_MUTATIONS: Final = {
    "attribute removed": (
        "ApplicationManifest",
        _PORT_BINDING,
        lambda e: dataclasses.replace(e, attrs=e.attrs[1:]),
        "ContainerHostPolicies/PortBinding: attribute 'ContainerPort' of the schema has no rule",
    ),
    "required flag changed": (
        "ApplicationManifest",
        _PORT_BINDING,
        lambda e: dataclasses.replace(
            e, attrs=(dataclasses.replace(e.attrs[0], required=False), *e.attrs[1:])
        ),
        "PortBinding: attribute 'ContainerPort' (required, kind, enum, min, max, pattern): "
        "schema (True, 'int', (), None, None, ''), rule (False, 'int', (), None, None, '')",
    ),
    "enumeration changed": (
        "ServiceManifest",
        ["Resources", "Endpoints", "Endpoint"],
        lambda e: dataclasses.replace(
            e,
            attrs=tuple(
                dataclasses.replace(a, enum=a.enum[:-1]) if a.name == "Protocol" else a
                for a in e.attrs
            ),
        ),
        "ServiceManifest/Resources/Endpoints/Endpoint: attribute 'Protocol'",
    ),
    "child removed": (
        "ApplicationManifest",
        [],
        lambda e: dataclasses.replace(e, content=e.content[:-1]),
        "ApplicationManifest: children (names, min, max)",
    ),
    "count changed": (
        "ServiceManifest",
        ["CodePackage"],
        lambda e: dataclasses.replace(
            e, content=(dataclasses.replace(e.content[0], high=2), *e.content[1:])
        ),
        "ServiceManifest/CodePackage: children (names, min, max)",
    ),
    "attribute added": (
        "Settings",
        ["Section", "Parameter"],
        lambda e: dataclasses.replace(e, attrs=(*e.attrs, Attr("Color"))),
        "Settings/Section/Parameter: attribute 'Color' of the rule is not in the schema",
    ),
    "text turned into elements": (
        "ServiceManifest",
        ["CodePackage", "EntryPoint", "ExeHost", "Program"],
        lambda e: dataclasses.replace(e, content=()),
        "ServiceManifest/CodePackage/EntryPoint/ExeHost/Program: schema says text",
    ),
}


@needs_schema
@pytest.mark.parametrize(
    ("root", "path", "change", "message"), _MUTATIONS.values(), ids=_MUTATIONS.keys()
)
def test_a_rule_changed_on_purpose_is_found(
    xsd: XsdReader, root: str, path: list[str], change: object, message: str
) -> None:
    rules = {**ROOTS, root: _edit(ROOTS[root], path, change)}
    problems = differences(xsd, rules)
    assert any(message in p for p in problems), problems
    assert len(problems) == 1, problems
