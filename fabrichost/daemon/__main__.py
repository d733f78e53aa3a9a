"""``python -m fabrichost.daemon``: the agent in the foreground (what ``fabrichost up`` starts)."""

from __future__ import annotations

from fabrichost.daemon._foreground import main

if __name__ == "__main__":
    raise SystemExit(main())
