"""Safe XML parsing: hostile input is refused at once, with the file named."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from fabrichost.errors import ManifestError
from fabrichost.manifest import MAX_FILE_BYTES, check_path, load_document
from fabrichost.manifest._xml import parse_xml, read_xml

from .helpers import NS, settings, write

if TYPE_CHECKING:
    from pathlib import Path

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Settings xmlns="{ns}"><Section Name="&lol9;"/></Settings>
""".replace("{ns}", NS)

XXE = f"""<?xml version="1.0"?>
<!DOCTYPE Settings [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Settings xmlns="{NS}"><Section Name="s"><Parameter Name="p" Value="&xxe;"/></Section></Settings>
"""


@pytest.mark.parametrize("text", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_hostile_doctype_is_refused_at_once_naming_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "Settings.xml", text)
    started = time.monotonic()
    with pytest.raises(ManifestError) as caught:
        load_document(path)
    assert time.monotonic() - started < 10.0  # an expansion would take far longer, or forever
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.file == str(path)
    assert diagnostic.line == 2
    assert "DOCTYPE" in diagnostic.message
    assert "root:" not in str(caught.value)  # nothing of /etc/passwd leaked


def test_doctype_in_utf16_is_refused_after_parsing(tmp_path: Path) -> None:
    text = (
        '<?xml version="1.0" encoding="UTF-16"?>\n'
        f'<!DOCTYPE Settings [<!ENTITY x "y">]>\n<Settings xmlns="{NS}"/>'
    )
    path = tmp_path / "Settings.xml"
    path.write_bytes(text.encode("utf-16"))
    with pytest.raises(ManifestError, match="DOCTYPE"):
        read_xml(path)


def test_plain_doctype_without_entities_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "s.xml", f'<!DOCTYPE Settings>\n<Settings xmlns="{NS}"/>')
    with pytest.raises(ManifestError, match="DOCTYPE declaration is not allowed"):
        read_xml(path)


def test_undeclared_entity_is_a_syntax_error_with_line(tmp_path: Path) -> None:
    path = write(tmp_path / "s.xml", f'<Settings xmlns="{NS}">\n<Section Name="&x;"/></Settings>')
    with pytest.raises(ManifestError) as caught:
        read_xml(path)
    assert caught.value.diagnostics[0].line == 2
    assert "not well-formed" in caught.value.diagnostics[0].message


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"<a>" + b" " * MAX_FILE_BYTES + b"</a>")
    with pytest.raises(ManifestError, match="byte limit") as caught:
        read_xml(path)
    assert caught.value.diagnostics[0].file == str(path)


def test_file_at_the_limit_is_accepted() -> None:
    data = f'<Settings xmlns="{NS}"/>'.encode()
    data += b" " * (MAX_FILE_BYTES - len(data))
    assert parse_xml(data, "x.xml").name == "Settings"


def test_xinclude_is_not_processed(tmp_path: Path) -> None:
    write(tmp_path / "secret.xml", f'<Section xmlns="{NS}" Name="stolen"/>')
    text = (
        f'<Settings xmlns="{NS}" xmlns:xi="http://www.w3.org/2001/XInclude">'
        '<xi:include href="secret.xml"/></Settings>'
    )
    root = read_xml(write(tmp_path / "Settings.xml", text))
    assert [c.name for c in root.children] == ["include"]
    result = check_path(tmp_path / "Settings.xml")
    assert not result.ok
    assert "include" in result.diagnostics[0].message


def test_unreadable_path_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read file"):
        read_xml(tmp_path / "missing.xml")


def test_bad_encoding_declaration_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="not well-formed XML"):
        parse_xml(b'<?xml version="1.0" encoding="no-such-codec"?><a/>', "x.xml")


def test_node_keeps_lines_attributes_and_direct_text(tmp_path: Path) -> None:
    text = settings('\n  <Section Name="A"><!-- c -->x<Parameter Name="p" Value="v"/>y</Section>')
    root = read_xml(write(tmp_path / "Settings.xml", text))
    section = root.children[0]
    assert (section.name, section.namespace, section.line) == ("Section", NS, 2)
    assert section.attribute("Name") == "A"
    assert section.attribute("Missing") is None
    assert section.text == "xy"
    assert section.has_text
    assert section.child("Parameter") is section.children[0]
    assert section.child("Nope") is None
    assert section.all("Parameter") == section.children


def test_non_breaking_space_counts_as_text() -> None:
    root = parse_xml(f'<Settings xmlns="{NS}">\u00a0</Settings>'.encode(), "x.xml")
    assert root.has_text
    assert not parse_xml(f'<Settings xmlns="{NS}"> \t\r\n</Settings>'.encode(), "x").has_text
