"""Setting one attribute in a manifest's text changes that value and no other byte."""

from __future__ import annotations

import pytest

from fabrichost.dev import AttributeEdit, EditError, apply_edits

MANIFEST = """<?xml version="1.0" encoding="utf-8"?>
<!-- <CodePackage Name="Web" Version="commented" /> -->
<sf:ServiceManifest xmlns:sf="http://schemas.microsoft.com/2011/01/fabric"
    Name="ShopPkg"
    Version='1.0.0'>
  <sf:CodePackage Version="1.0.0" Name="Web"><![CDATA[<CodePackage Name="Web" Version="x">]]>
  </sf:CodePackage>
  <sf:CodePackage
      Name = "Worker"  Version="2" >
  </sf:CodePackage>
  <sf:ConfigPackage Name="Config" Version="3"/>
</sf:ServiceManifest>
"""


def test_each_edit_changes_only_its_value() -> None:
    edited = apply_edits(
        MANIFEST,
        [
            AttributeEdit("ServiceManifest", "Version", "1.0.0-dev.2"),
            AttributeEdit("CodePackage", "Version", "1.0.0-dev.2", key=("Name", "Web")),
            AttributeEdit("CodePackage", "Version", "2-dev.2", key=("Name", "Worker")),
            AttributeEdit("ConfigPackage", "Version", "3-dev.2", key=("Name", "Config")),
        ],
    )
    expected = (
        MANIFEST.replace("Version='1.0.0'", "Version='1.0.0-dev.2'")
        .replace('Version="1.0.0" Name="Web"', 'Version="1.0.0-dev.2" Name="Web"')
        .replace('Version="2"', 'Version="2-dev.2"')
        .replace('Version="3"', 'Version="3-dev.2"')
    )
    assert edited == expected
    assert "commented" in edited
    assert 'Version="x"' in edited


def test_a_value_is_escaped_for_its_quotes() -> None:
    edited = apply_edits(MANIFEST, [AttributeEdit("ConfigPackage", "Version", 'a"b')])
    assert 'Version="a&quot;b"' in edited


def test_a_key_is_compared_with_its_entities_read() -> None:
    text = '<A><B Name="x&amp;y" V="1"/><B Name="x&quot;y" V="2"/></A>'
    edited = apply_edits(text, [AttributeEdit("B", "V", "9", key=("Name", 'x"y'))])
    assert edited == '<A><B Name="x&amp;y" V="1"/><B Name="x&quot;y" V="9"/></A>'


@pytest.mark.parametrize(
    "edit",
    [
        AttributeEdit("CodePackage", "Version", "9", key=("Name", "Missing")),
        AttributeEdit("CodePackage", "Version", "9"),  # two of them: which one?
        AttributeEdit("DataPackage", "Version", "9"),
        AttributeEdit("ConfigPackage", "Colour", "9", key=("Name", "Config")),
    ],
)
def test_an_edit_that_does_not_name_one_element_is_refused(edit: AttributeEdit) -> None:
    with pytest.raises(EditError):
        apply_edits(MANIFEST, [edit])
