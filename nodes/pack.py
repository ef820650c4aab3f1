"""The node pack as one registry: every node of the modules of :data:`NODE_MODULES`."""

from __future__ import annotations

import importlib

__all__ = ["NODE_MODULES", "registry"]

NODE_MODULES = ("model", "latent", "classes", "paint", "feature", "generate", "image", "mask", "realimage")
PACKAGE = __name__.rpartition(".")[0]


def registry():
    """A new :class:`collage_engine.NodeRegistry` holding every node of the pack."""
    from collage_engine import NodeRegistry

    reg = NodeRegistry()
    for name in NODE_MODULES:
        reg.add_module(importlib.import_module(f"{PACKAGE}.{name}"))
    return reg
