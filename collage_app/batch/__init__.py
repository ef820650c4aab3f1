"""Batch runs: a workflow once per row of ``--over`` specs (``neural-collage map``; :mod:`collage_app.mapping` is
its command line). The spec grammar is :mod:`.specs`, the manifest :mod:`.manifest`, running rows on one engine
:mod:`.rows`, the map itself :mod:`.run` and its Ray path :mod:`.on_ray` (Ray is imported only there).

    from collage_app.batch import map_workflow
    result = map_workflow("workflows/class_collage.json", ["Latent.seed=0:16"], "runs/seeds")
    result.ok, result.failed, result.manifest
"""

from __future__ import annotations

from .manifest import read_manifest
from .rows import RowRunner
from .run import MapResult, map_api, map_workflow
from .specs import MANIFEST, MapError, MapSpecError, Row, axes, build_rows, rows_table

__all__ = ["MANIFEST", "MapError", "MapResult", "MapSpecError", "Row", "RowRunner", "axes", "build_rows",
           "map_api", "map_workflow", "read_manifest", "rows_table"]
