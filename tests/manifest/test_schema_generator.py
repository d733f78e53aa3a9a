"""``tools/gen_manifest_schema.py`` still writes the table the package ships.

The table is compared with the schema by ``test_schema_xsd.py``; this test makes sure the
generator, run again on the same schema, gives equal rules, so that regenerating after a schema
change starts from what is committed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Final

import pytest

from fabrichost.manifest import _schema_table

ROOT: Final = Path(__file__).resolve().parents[2]
SCHEMA: Final = ROOT.parent / "shared/sfcorpus/schema/ServiceFabricServiceModel.xsd"
GENERATOR: Final = ROOT / "tools" / "gen_manifest_schema.py"


@pytest.mark.skipif(not SCHEMA.is_file(), reason=f"schema not found at {SCHEMA}")
def test_the_generator_reproduces_the_committed_table(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("gen_manifest_schema", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being made.
    monkeypatch.setitem(sys.modules, spec.name, generator)
    spec.loader.exec_module(generator)
    code: str = generator.generate(SCHEMA)
    assert "sha256: " in code
    namespace: dict[str, object] = {}
    exec(compile(code, "generated", "exec"), namespace)
    for name in ("APPLICATION_MANIFEST", "SERVICE_MANIFEST", "SETTINGS", "APPLICATION_PARAMETERS"):
        assert namespace[name] == getattr(_schema_table, name), name
