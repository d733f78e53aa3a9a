"""The agent's HTTP API (Service Fabric's REST paths and JSON, on loopback)."""

from __future__ import annotations

from fabrichost.api._app import build_app as build_app

__all__ = ("build_app",)
