from __future__ import annotations

from fabrichost.cli import run

run()
