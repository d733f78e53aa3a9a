"""The agent's HTTP API (Service Fabric's REST paths and JSON, on loopback)."""

from __future__ import annotations

from fabrichost.api._access import AccessPolicy as AccessPolicy
from fabrichost.api._access import uid_of as uid_of
from fabrichost.api._app import build_app as build_app

__all__ = ("AccessPolicy", "build_app", "uid_of")
