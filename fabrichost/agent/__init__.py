"""The node agent: process supervision, activations, the channel driver, the cluster, the daemon."""

from __future__ import annotations
