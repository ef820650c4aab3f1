"""The Ray path of :func:`collage_app.batch.map_workflow`: Ray Data ``map_batches`` over N stateful workers.

Each worker is an instance of :class:`_RayRows` (Ray Data's idiom for stateful batch inference: a callable class
built once per actor), holding one :class:`~collage_app.batch.rows.RowRunner` - one engine, its model and cache, on
the worker's GPU when the cluster has GPUs. The rows are a dataset of one row per block, so results stream back
one by one (Ray handles scheduling, back-pressure and retrying rows of a worker that died); the driver writes the
manifest. Workers write the pictures themselves under ``OUT/<row id>/``: on a cluster of several machines OUT (and
the inputs' files) must be on a shared file system. Ray is imported only here.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

from .rows import RowRunner
from .specs import MapError, Row

__all__ = ["run_on_ray", "import_ray"]

MISSING = ("--ray needs Ray, which is not installed: pip install 'neural-collage[scale]' "
           "(or pip install 'ray[data]')")


def import_ray():
    """``ray`` and ``ray.data``, or :class:`MapError` saying how to install them."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise MapError(f"{MISSING} ({e})") from None
    return ray


class _RayRows:
    """One Ray worker: builds its engine once, then runs the rows of each batch (``{"row": [JSON, ...]}``)."""

    def __init__(self, api_json: str, out: str, cwd: str, engine_kwargs: dict | None = None,
                 threads: int | None = None) -> None:
        from collage_core.threads import apply_threads, choose_threads

        apply_threads(choose_threads(threads))  # Ray sets OMP_NUM_THREADS to the worker's CPUs: the default
        if cwd and os.path.isdir(cwd):  # relative paths of the workflow and the specs mean what they meant there
            os.chdir(cwd)
        logging.getLogger("collage_engine").setLevel(logging.CRITICAL)  # failures go to the manifest
        self.runner = RowRunner(json.loads(api_json), out, engine_kwargs=engine_kwargs)
        try:  # which Ray node ran a row (several nodes may share a host name)
            import ray

            self.runner.worker += f" node {ray.get_runtime_context().get_node_id()[:12]}"
        except Exception:  # noqa: BLE001 - only a label
            pass

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        records = [json.dumps(self.runner.run(Row.from_dict(json.loads(text)))) for text in batch["row"]]
        return {"record": np.array(records, dtype=object)}


def _init(ray, address: str) -> bool:
    """Connect (``auto``: RAY_ADDRESS or a cluster started with ``ray start``, else a new local one); True if we
    started Ray here (and so shut it down at the end)."""
    if ray.is_initialized():
        return False
    kwargs = {} if address in ("auto", "", None) else {"address": address}
    try:
        ray.init(**kwargs, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise MapError(f"--ray {address}: cannot start or reach a Ray cluster: {e}") from None
    return True


def run_on_ray(api: dict, rows: list[Row], out, workers: int | None, address: str,
               record: Callable[[dict], None], engine_kwargs: dict | None = None, threads: int | None = None) -> float:
    """Run ``rows`` on Ray workers, calling ``record`` with each manifest record as it arrives; return the seconds
    spent starting Ray (connecting, not the workers' model loading)."""
    import time

    t0 = time.perf_counter()
    ray = import_ray()
    started = _init(ray, address)
    try:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours counts rows
        gpus = float(ray.cluster_resources().get("GPU", 0))
        n = workers or (int(gpus) if gpus >= 1 else 2)
        per_worker = {"num_cpus": threads or 1, **({"num_gpus": min(1.0, gpus / n)} if gpus else {})}
        startup = time.perf_counter() - t0
        ds = ray.data.from_items([{"row": json.dumps(r.to_dict())} for r in rows], override_num_blocks=len(rows))
        ds = ds.map_batches(_RayRows, fn_constructor_kwargs={"api_json": json.dumps(api), "out": str(out),
                                                             "cwd": os.getcwd(), "engine_kwargs": engine_kwargs,
                                                             "threads": threads},
                            batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=n),
                            **per_worker)
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for text in batch["record"]:
                    record(json.loads(text))
        except ray.exceptions.RayError as e:  # rows themselves never raise: a worker or the cluster failed
            raise MapError(f"Ray failed: {type(e).__name__}: {e}\nthe finished rows are in the manifest; run the "
                           f"same command again to resume") from None
    finally:
        if started:
            ray.shutdown()
    return startup
