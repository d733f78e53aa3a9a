"""Safe XML reading: the only module that imports lxml.

Usage::

    root = read_xml(Path("ApplicationManifest.xml"))
    root.name, root.line, root.attribute("ApplicationTypeName"), root.children

The file is parsed with a hardened parser (no DTD, no entity expansion, no network, no XInclude,
libxml2's default depth and size limits) after a size check, and any document type declaration
is refused, so a billion-laughs or XXE file costs nothing and yields a :class:`ManifestError`.
The lxml tree is then copied into plain frozen :class:`Node` objects, so the rest of the package
never touches lxml and cannot be tricked by lazily resolved content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from lxml import etree

from fabrichost.errors import Diagnostic, ManifestError

if TYPE_CHECKING:
    from pathlib import Path

FABRIC_NAMESPACE: Final = "http://schemas.microsoft.com/2011/01/fabric"
MAX_FILE_BYTES: Final = 4 * 1024 * 1024
MAX_ATTRIBUTES: Final = 64

# XML's own notion of whitespace (XML 1.0 §2.3 production S); str.isspace() would also accept
# U+00A0, which the schema counts as character content (a corpus file has exactly that).
_XML_WHITESPACE: Final = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Node:
    """One element: local name, namespace, source line, attributes, direct text and children.

    ``text`` is the element's own character data (its text and the tails of its children,
    comments and processing instructions excluded), which is what "character content" means to
    the schema.
    """

    name: str
    namespace: str | None
    line: int
    attributes: tuple[tuple[str, str], ...]
    text: str
    children: tuple[Node, ...]

    def attribute(self, name: str) -> str | None:
        """The value of the attribute ``name`` (no namespace), or None when absent."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    def child(self, name: str) -> Node | None:
        """The first child element called ``name``, or None."""
        for node in self.children:
            if node.name == name:
                return node
        return None

    def all(self, name: str) -> tuple[Node, ...]:
        """Every child element called ``name``, in document order."""
        return tuple(node for node in self.children if node.name == name)

    @property
    def has_text(self) -> bool:
        """True when the element holds character content other than XML whitespace."""
        return bool(self.text.strip(_XML_WHITESPACE))


class _RefuseEverything(etree.Resolver):
    """Resolve every external reference to nothing.

    The DOCTYPE byte scan only sees ASCII-compatible encodings; in UTF-16 libxml2 reads the
    DOCTYPE (and may open what it names, even a FIFO) before the parsed-document check below
    refuses it. With this resolver nothing outside the file is ever opened, whatever the
    encoding.
    """

    def resolve(self, system_url: str, public_id: str, context: object) -> object:  # type: ignore[override]
        return self.resolve_string("", context, base_url=None)


def _parser() -> etree.XMLParser:
    # A fresh parser per file: lxml parsers keep state and are not thread-safe.
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )
    parser.resolvers.add(_RefuseEverything())
    return parser


def _line(element: etree._Element) -> int:
    line: object = element.sourceline  # untyped in lxml-stubs
    return line if isinstance(line, int) else 0


def _convert(element: etree._Element, file: str) -> Node:
    qname = etree.QName(element)
    if len(element.attrib) > MAX_ATTRIBUTES:
        # Strategy: lxml lists attributes in quadratic time; a hostile element with 100,000 of
        # them would take minutes. No Service Fabric element has more than a few dozen.
        raise ManifestError(
            Diagnostic(
                file,
                _line(element),
                f"element '{qname.localname}' has {len(element.attrib)} attributes; at most "
                f"{MAX_ATTRIBUTES} are accepted",
            )
        )
    texts = [element.text or ""]
    children: list[Node] = []
    for sub in element:
        texts.append(sub.tail or "")
        if isinstance(sub.tag, str):
            children.append(_convert(sub, file))
    return Node(
        name=qname.localname,
        namespace=qname.namespace,
        line=_line(element),
        attributes=tuple((str(key), str(value)) for key, value in element.attrib.items()),
        text="".join(texts),
        children=tuple(children),
    )


def parse_xml(data: bytes, file: str) -> Node:
    """Parse ``data`` (the bytes of ``file``) into a :class:`Node` tree.

    Raises:
        ManifestError: the bytes are too many, not well-formed XML, or declare a DOCTYPE.
    """
    if len(data) > MAX_FILE_BYTES:
        raise ManifestError(
            Diagnostic(file, None, f"file is larger than the {MAX_FILE_BYTES} byte limit")
        )
    # Strategy: refuse a DOCTYPE before libxml2 sees it when it is visible in the raw bytes
    # (the common UTF-8 case), and check the parsed document type afterwards for other encodings.
    if b"<!DOCTYPE" in data:
        line = data[: data.index(b"<!DOCTYPE")].count(b"\n") + 1
        raise _doctype_error(file, line)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        where: int | None = exc.lineno or None
        raise ManifestError(Diagnostic(file, where, f"not well-formed XML: {exc.msg}")) from exc
    if root.getroottree().docinfo.internalDTD is not None:  # set by any DOCTYPE
        raise _doctype_error(file, 1)
    return _convert(root, file)


def _doctype_error(file: str, line: int) -> ManifestError:
    return ManifestError(
        Diagnostic(
            file, line, "a DOCTYPE declaration is not allowed (DTDs and entities are refused)"
        )
    )


def read_xml(path: Path) -> Node:
    """Read and parse the file at ``path``; see :func:`parse_xml`.

    Raises:
        ManifestError: the file cannot be read, is too large, or is not acceptable XML.
    """
    file = str(path)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ManifestError(Diagnostic(file, None, f"cannot read file: {exc.strerror}")) from exc
    return parse_xml(data, file)
