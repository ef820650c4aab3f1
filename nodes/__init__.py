"""collage_nodes: the neural-collage node pack (ComfyUI-style nodes over ``collage_core``) and its command line.

Build and run graphs in Python::

    from collage_engine import Graph
    import collage_nodes

    g = Graph(collage_nodes.registry())
    G = g.node("LoadGenerator", model="emoji-animals")
    z = g.node("SampleZ", generator=G, seed=3, batch=1)
    cmap = g.node("ClassMap", generator=G, base_class="dog")
    mask = g.node("CollageEllipseMask", center_x=0.5, center_y=0.4, radius_x=0.3, radius_y=0.25)
    cmap = g.node("PaintClass", class_map=cmap, mask=mask, class_name="cat", strength=1.0)
    img = g.node("Generate", generator=G, z=z, class_map=cmap)
    g.node("CollageSaveImage", images=img, filename_prefix="dog-cat")
    result = collage_nodes.engine().run(g)          # keep the engine: re-runs are served from its cache
    images, = result[img]                             # IMAGE (1, 64, 64, 3) in [0, 1]

Saved workflows (``workflows/*.json``, editor format, or ``workflows/api/*.json``) run the same way:
``collage_nodes.engine().run("workflows/x.json")``; batch runs over many inputs are the application's
(:func:`collage_app.batch.map_workflow`).
Node modules: :mod:`.model`, :mod:`.latent`, :mod:`.classes`, :mod:`.feature`, :mod:`.generate`, :mod:`.image`,
:mod:`.mask`, :mod:`.realimage`, :mod:`.paint`; the reference documentation (``docs/nodes.md``) is generated
from them by :mod:`.docs`.
"""

from __future__ import annotations

from typing import Any

from .pack import NODE_MODULES, registry

__all__ = ["NODE_MODULES", "engine", "registry"]


def engine(**kwargs: Any):
    """A :class:`~collage_nodes.runner.CollageEngine` over :func:`registry` (``kwargs`` go to the engine: cache
    budgets, listeners). Its runs embed the workflow in saved PNGs."""
    from .runner import CollageEngine

    return CollageEngine(registry(), **kwargs)
