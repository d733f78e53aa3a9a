"""Generate ``fabrichost/manifest/_schema_table.py`` from the real Service Fabric schema.

Usage::

    python tools/gen_manifest_schema.py ../shared/sfcorpus/schema/ServiceFabricServiceModel.xsd

The schema file is not shipped with fabrichost, so its rules are written into the package as
Python data (``Elem``, ``Attr``, ``Particle`` … from ``_schema_rules``), starting from the four
roots a package holds: ``ApplicationManifest``, ``ServiceManifest``, ``Settings`` and
``Application`` (a parameter file). Run this again when the schema changes, then run
``tests/manifest/test_schema_xsd.py``, which reads the schema on its own and compares it with
the table element by element (it does not use this script).

The rule model is smaller than XML Schema; every construct the schema uses is translated
exactly, and anything else stops the script with the construct's name:

* a choice whose alternatives are elements becomes one particle counting all of them:
  ``(A{0,1} | B{0,∞}){0,∞}`` accepts any mix, as does ``(A|B){0,∞}``. This is exact as long as
  a choice taken at most once has no alternative that repeats (checked here);
* a repeated sequence of one element ``(A{i,j}){k,l}`` is ``A{ik,jl}``;
* a repeated sequence of optional elements, ``(A? B?)*``, accepts any mix of A and B, so it
  becomes the repeated choice ``(A|B)*``;
* ``xs:group`` references are inlined; ``complexContent`` extensions append the extension's
  sequence to the base's and add its attributes;
* an element declared without a type is ``xs:anyType`` (any attributes, children and text):
  :class:`Open`, the only place where content is not checked, as in the schema.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from lxml import etree

XS: Final = "{http://www.w3.org/2001/XMLSchema}"
ROOTS: Final = {
    "ApplicationManifest": "APPLICATION_MANIFEST",
    "ServiceManifest": "SERVICE_MANIFEST",
    "Settings": "SETTINGS",
    "Application": "APPLICATION_PARAMETERS",
}
UNBOUNDED: Final = "UNBOUNDED"
OUTPUT: Final = Path(__file__).resolve().parents[1] / "fabrichost/manifest/_schema_table.py"
_BUILTIN_KINDS: Final = {
    None: "string",
    "xs:string": "string",
    "xs:anyURI": "string",
    "xs:boolean": "boolean",
    "xs:int": "int",
    "xs:long": "long",
}


class Unsupported(Exception):
    """The schema uses a construct this translation does not handle."""


def _occurs(node: etree._Element) -> tuple[int, int | None]:
    high = node.get("maxOccurs", "1")
    return int(node.get("minOccurs", "1")), None if high == "unbounded" else int(high)


def _high(value: int | None) -> str:
    return UNBOUNDED if value is None else str(value)


def _children(node: etree._Element) -> list[etree._Element]:
    return [c for c in node if isinstance(c.tag, str) and c.tag != XS + "annotation"]


@dataclass
class Generator:
    schema: etree._Element
    definitions: dict[str, str] = field(default_factory=dict)  # variable -> code, in order
    _busy: set[str] = field(default_factory=set)

    def _global(self, kind: str, name: str) -> etree._Element:
        for node in self.schema.findall(XS + kind):
            if node.get("name") == name:
                return node
        raise Unsupported(f"no global {kind} named {name}")

    # ---- simple types ---------------------------------------------------------------------

    def facets(self, type_name: str | None, inline: etree._Element | None) -> dict[str, object]:
        """Keyword arguments of ``Attr`` (without name and use) for a simple type."""
        if inline is None and type_name in _BUILTIN_KINDS:
            return {"kind": _BUILTIN_KINDS[type_name]}
        node = inline if inline is not None else self._global("simpleType", str(type_name))
        (restriction,) = _children(node)
        if restriction.tag != XS + "restriction":
            raise Unsupported(f"simple type {type_name}: {restriction.tag}")
        result = self.facets(restriction.get("base"), None)
        enum = [f.get("value") for f in restriction.findall(XS + "enumeration")]
        if enum:
            result["enum"] = tuple(enum)
        for facet in _children(restriction):
            tag, value = facet.tag.removeprefix(XS), str(facet.get("value"))
            if tag == "minLength" and int(value) >= 1 and result["kind"] == "string":
                result["kind"] = "nonempty"
            elif tag == "minInclusive":
                result["minimum"] = int(value)
            elif tag == "maxInclusive":
                result["maximum"] = int(value)
            elif tag == "pattern":
                if "\\" in value:  # \i, \c, \p{…} mean other things in Python
                    raise Unsupported(f"pattern {value!r}")
                result["pattern"] = value
            elif tag not in ("enumeration", "minLength"):
                raise Unsupported(f"facet {tag}")
        return result

    def attribute(self, node: etree._Element) -> str:
        inline = node.find(XS + "simpleType")
        facets = self.facets(node.get("type"), inline)
        arguments = [repr(node.get("name"))]
        if node.get("use") == "required":
            arguments.append("required=True")
        if node.get("use") not in (None, "required", "optional"):
            raise Unsupported(f"attribute use {node.get('use')}")
        if facets["kind"] != "string":
            arguments.append(f"kind={facets['kind']!r}")
        arguments += [
            f"{key}={facets[key]!r}"
            for key in ("enum", "minimum", "maximum", "pattern")
            if key in facets
        ]
        return f"Attr({', '.join(arguments)})"

    def attributes(self, owner: etree._Element) -> tuple[list[str], bool]:
        """The attributes declared directly in ``owner`` and whether it has ``xs:anyAttribute``."""
        found: list[str] = []
        any_attributes = False
        for node in _children(owner):
            if node.tag == XS + "attribute":
                found.append(self.attribute(node))
            elif node.tag == XS + "attributeGroup":
                group = self._global("attributeGroup", node.get("ref", ""))
                more, anything = self.attributes(group)
                found += more
                any_attributes |= anything
            elif node.tag == XS + "anyAttribute":
                any_attributes = True
        return found, any_attributes

    # ---- content models -------------------------------------------------------------------

    def particles(self, group: etree._Element) -> list[str]:
        """The particles of a model group seen as one sequence."""
        tag = group.tag.removeprefix(XS)
        low, high = _occurs(group)
        if tag == "group":
            if (low, high) != (1, 1):
                raise Unsupported("a repeated group reference")
            (inner,) = _children(self._global("group", group.get("ref", "")))
            return self.particles(inner)
        if tag == "element":
            return [f"Particle({self.element(group)}, {low}, {_high(high)})"]
        if tag == "any":
            if group.get("namespace") != "##other":
                raise Unsupported(f"xs:any namespace={group.get('namespace')}")
            return [f"Particle(Wildcard(), {low}, {_high(high)})"]
        items = _children(group)
        if tag == "sequence" and (low, high) == (1, 1):
            return [particle for item in items for particle in self.particles(item)]
        if (
            tag == "sequence"
            and high is None
            and all(i.tag == XS + "element" and _occurs(i) == (0, 1) for i in items)
        ):
            return [self._choice(items, 0, None)]
        single = tag == "sequence" and len(items) == 1  # (A{i,j}){k,l} is A{ik,jl}
        if (tag == "choice" or single) and all(i.tag == XS + "element" for i in items):
            counts = [_occurs(i) for i in items]
            if high == 1 and len(items) > 1 and any(h != 1 for _, h in counts):
                raise Unsupported("a choice taken once with a repeating alternative")
            highs = [h for _, h in counts]
            most = None if high is None or None in highs else high * max(h or 0 for h in highs)
            return [self._choice(items, low * min(lo for lo, _ in counts), most)]
        raise Unsupported(f"{tag} with {[i.tag for i in items]}")

    def _choice(self, items: list[etree._Element], low: int, high: int | None) -> str:
        if len(items) == 1:
            return f"Particle({self.element(items[0])}, {low}, {_high(high)})"
        alternatives = ", ".join(self.element(i) for i in items)
        return f"Particle(Choice(({alternatives},)), {low}, {_high(high)})"

    def complex_type(self, node: etree._Element) -> tuple[list[str], str, bool]:
        """Attributes, content and anyAttribute of a complex type."""
        model = [c for c in _children(node) if c.tag.removeprefix(XS) in _MODEL_GROUPS]
        attrs, any_attributes = self.attributes(node)
        for derived in _children(node):
            if derived.tag in (XS + "complexContent", XS + "simpleContent"):
                (extension,) = _children(derived)
                if extension.tag != XS + "extension":
                    raise Unsupported(f"derivation by {extension.tag}")
                more, anything = self.attributes(extension)
                if derived.tag == XS + "simpleContent":
                    if extension.get("base") != "xs:string":
                        raise Unsupported(f"simple content of {extension.get('base')}")
                    return attrs + more, "Text()", any_attributes or anything
                base_attrs, base_content, base_any = self.complex_type(
                    self._global("complexType", extension.get("base", ""))
                )
                added = [c for c in _children(extension) if c.tag.removeprefix(XS) in _MODEL_GROUPS]
                content = base_content.removeprefix("(").removesuffix(")").rstrip(", ")
                particles = [content] if content else []
                for group in added:
                    particles += self.particles(group)
                return (
                    base_attrs + attrs + more,
                    f"({''.join(p + ', ' for p in particles)})",
                    base_any or any_attributes or anything,
                )
        if not model:
            return attrs, "()", any_attributes
        (group,) = model
        if group.tag == XS + "all":
            parts = ", ".join(
                f"Particle({self.element(e)}, {_occurs(e)[0]}, 1)" for e in _children(group)
            )
            return attrs, f"All(({parts},))", any_attributes
        return attrs, f"({''.join(p + ', ' for p in self.particles(group))})", any_attributes

    def named_type(self, name: str) -> str:
        variable = f"_{name}"
        if variable not in self.definitions:
            if variable in self._busy:
                raise Unsupported(f"recursive type {name}")
            self._busy.add(variable)
            attrs, content, anything = self.complex_type(self._global("complexType", name))
            self.definitions[variable] = (
                f"# complexType {name}\n{variable}: Final[_Type] = (\n"
                f"    ({''.join(a + ', ' for a in attrs)}), {content}, {anything}\n)"
            )
        return variable

    def element(self, node: etree._Element) -> str:
        """An ``Elem`` expression for an element declaration or reference."""
        if node.get("ref"):
            target = self._global("element", node.get("ref", ""))
            return self.element(target)
        name = node.get("name")
        type_name = node.get("type")
        inline_complex = node.find(XS + "complexType")
        inline_simple = node.find(XS + "simpleType")
        if inline_complex is not None:
            attrs, content, anything = self.complex_type(inline_complex)
            return f"Elem({name!r}, ({''.join(a + ', ' for a in attrs)}), {content}, {anything})"
        if type_name is None and inline_simple is None:
            return f'Elem({name!r}, (), Open("declared without a type: xs:anyType"), True)'
        if inline_simple is not None or type_name in _BUILTIN_KINDS or self._is_simple(type_name):
            facets = self.facets(type_name, inline_simple)
            if set(facets) - {"kind", "enum"} or facets["kind"] != "string":
                raise Unsupported(f"element {name}: text of {facets}")
            enum = facets.get("enum", ())
            return (
                f"Elem({name!r}, content=Text({enum!r}))"
                if enum
                else (f"Elem({name!r}, content=Text())")
            )
        return f"Elem({name!r}, *{self.named_type(str(type_name))})"

    def _is_simple(self, type_name: str | None) -> bool:
        return any(n.get("name") == type_name for n in self.schema.findall(XS + "simpleType"))


_MODEL_GROUPS: Final = ("sequence", "choice", "all", "group")


def generate(schema_path: Path) -> str:
    data = schema_path.read_bytes()
    generator = Generator(etree.fromstring(data))
    roots = {
        variable: generator.element(generator._global("element", name))
        for name, variable in ROOTS.items()
    }
    version = generator.schema.findtext(f"{XS}annotation/{XS}documentation") or ""
    lines = [
        '"""The Service Fabric schema\'s rules for the four files of an application package.',
        "",
        "GENERATED by tools/gen_manifest_schema.py from ServiceFabricServiceModel.xsd; do not",
        "edit by hand. tests/manifest/test_schema_xsd.py compares it with the schema.",
        "",
        "Schema:",
        *version.strip().split(". "),
        f"sha256: {hashlib.sha256(data).hexdigest()}",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Final",
        "",
        "from fabrichost.manifest._schema_rules import (",
        "    UNBOUNDED, All, Attr, Choice, Content, Elem, Open, Particle, Text, Wildcard,",
        ")",
        "",
        "# A named complexType of the schema: its attributes, content model and xs:anyAttribute.",
        "_Type = tuple[tuple[Attr, ...], Content, bool]",
        "",
    ]
    for code in generator.definitions.values():
        lines += [code, ""]
    for variable, code in roots.items():
        lines += [f"{variable}: Final = {code}", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write(__doc__ or "")
        return 2
    OUTPUT.write_text(generate(Path(argv[0])), encoding="utf-8")
    # The table is long; ruff lays it out so that it reads (and passes ruff check).
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(OUTPUT)], check=True)
    subprocess.run([sys.executable, "-m", "ruff", "check", "-q", "--fix", str(OUTPUT)], check=True)
    sys.stdout.write(f"wrote {OUTPUT}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
