"""The prompt API routes over the queue: node schemas, ``/prompt``, ``/queue``, ``/history``, ``/jobs``,
``/interrupt`` and ``/free``, and the job/history formatting of their answers (ComfyUI's bodies).

:class:`PromptRoutes` is a part of :class:`~collage_engine.server.PromptServer`; it works through the server's
:class:`~collage_engine.server.queue.PromptQueue` (``self.queue``: ``enqueue``, ``snapshot``, ``history``, ``cancel``,
...).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
from typing import Any

from aiohttp import web

from ..executor import public_ui
from ..paths import input_pictures
from .protocol import _ID_RE, _error, _json, _now_ms, _read_json, _read_json_object
from .queue import QueueItem

JOB_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")


class PromptRoutes:
    """The HTTP handlers of :class:`~collage_engine.server.PromptServer` for nodes, prompts, queue, history, jobs."""

    # -- nodes and prompts ---------------------------------------------------------------------------------------
    async def _object_info(self, request: web.Request) -> web.Response:
        info = await asyncio.get_running_loop().run_in_executor(None, self.registry.object_info)
        return _json(self._with_uploads(info))

    async def _object_info_node(self, request: web.Request) -> web.Response:
        cls = self.registry.get(request.match_info["node_class"])
        if cls is None:
            return _json({})
        info = await asyncio.get_running_loop().run_in_executor(None, cls.object_info)
        return _json(self._with_uploads({cls.name: info}))

    def _with_uploads(self, info: dict) -> dict:
        """The node schemas as served: every node's ``python_module`` set to the server's (when it has one, see
        :class:`~collage_engine.server.PromptServer`); text inputs marked ``image_upload`` as ComfyUI's image pickers:
        a COMBO of the input folder's pictures (uploads; sub-folders as ``sub/name.png``) with its upload button;
        inputs with a ``path_kind`` (models) as a COMBO of ``path_choices(kind)`` when the server has that hook.
        Validation stays the node's: any name that resolves still runs (through the API, or a saved workflow)."""
        pictures = None
        choices_for = getattr(self, "path_choices", None)
        module = getattr(self, "python_module", None)
        for node_name, entry in info.items():
            cls = self.registry.get(node_name)
            if module:
                entry["python_module"] = module
            for group in ("required", "optional"):
                for name, spec in (entry.get("input", {}).get(group) or {}).items():
                    inp = cls.input_map.get(name) if cls is not None else None
                    kind = getattr(inp, "path_kind", None)
                    if kind and choices_for is not None and isinstance(spec, list) and spec and spec[0] == "STRING":
                        opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                        default = opts.get("default")
                        names = list(dict.fromkeys(([default] if default else []) + list(choices_for(kind))))
                        entry["input"][group][name] = [names, {k: v for k, v in opts.items() if k != "multiline"}]
                        continue
                    if isinstance(spec, list) and spec and spec[0] == "STRING" and len(spec) > 1 and \
                            isinstance(spec[1], dict) and spec[1].get("image_upload"):
                        if pictures is None:
                            pictures = input_pictures(self.input_dir)
                        default = spec[1].get("default")
                        choices = ([default] if default and default not in pictures else []) + pictures
                        entry["input"][group][name] = [choices, {k: v for k, v in spec[1].items()
                                                                 if k not in ("multiline", "default")}]
        return info

    async def _get_prompt(self, request: web.Request) -> web.Response:
        return _json(self.queue.status())

    async def _post_prompt(self, request: web.Request) -> web.Response:
        body = await _read_json_object(request, "invalid_prompt", "Invalid prompt",
                                       "the request body must be a JSON object")
        if isinstance(body, web.Response):
            return body
        prompt = body.get("prompt")
        if prompt is None:
            return _error(400, "no_prompt", "No prompt provided", "No prompt provided")
        if not isinstance(prompt, dict):
            return _error(400, "invalid_prompt", "Invalid prompt", "'prompt' must be an object of nodes")
        prompt_id = body.get("prompt_id")
        if prompt_id is not None and not (isinstance(prompt_id, str) and _ID_RE.match(prompt_id)):
            return _error(400, "invalid_prompt_id", "prompt_id must be a valid UUID",
                          "a UUID in lowercase hyphenated form; omit it to let the server make one")
        client_id = body.get("client_id")
        client_id = client_id if isinstance(client_id, str) and client_id else None
        extra_data = body.get("extra_data")
        extra_data = dict(extra_data) if isinstance(extra_data, dict) else {}
        if not isinstance(extra_data.get("extra_pnginfo", {}), dict):
            extra_data.pop("extra_pnginfo")
        targets = body.get("partial_execution_targets")
        ids_ok = isinstance(targets, list) and all(isinstance(t, (str, int)) and not isinstance(t, bool)
                                                   for t in targets)
        if targets is not None and not ids_ok:
            return _error(400, "invalid_prompt", "Invalid prompt", "partial_execution_targets must be a list of ids")
        targets = [str(t) for t in targets] if targets else []
        number = body.get("number")
        if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))
                                   or not math.isfinite(number)):
            return _error(400, "invalid_prompt", "Invalid prompt", "'number' must be a finite number")
        try:
            prompt = copy.deepcopy(prompt)
            if self.prepare_prompt is not None:
                prompt = self.prepare_prompt(prompt, self)
        except RecursionError:
            return _error(400, "invalid_prompt", "Invalid prompt", "the prompt is nested too deeply")
        except Exception as e:  # noqa: BLE001
            return _error(400, "invalid_prompt", "Invalid prompt", f"{type(e).__name__}: {e}")
        v = await asyncio.get_running_loop().run_in_executor(None, self.engine.validate, prompt, targets or None)
        if not v.ok:
            errors = v.to_dict()
            err = errors.get("error") or {}
            return _error(400, err.get("type", "prompt_outputs_failed_validation"),
                          err.get("message", "Prompt outputs failed validation"), err.get("details", ""),
                          node_errors=errors.get("node_errors") or {}, **(err.get("extra_info") or {}))
        if client_id:
            extra_data["client_id"] = client_id
        extra_data["create_time"] = _now_ms()
        try:
            item = self.queue.enqueue(v.prompt if isinstance(v.prompt, dict) else prompt, client_id=client_id,
                                prompt_id=prompt_id, extra_data=extra_data, targets=targets or v.targets,
                                front=bool(body.get("front")), number=number)
        except OverflowError as e:
            return _error(503, "queue_full", "The queue is full", str(e))
        except KeyError:
            return _error(400, "invalid_prompt_id", "prompt_id is already in use", str(prompt_id))
        return _json({"prompt_id": item.prompt_id, "number": item.number, "node_errors": {}})

    async def _get_queue(self, request: web.Request) -> web.Response:
        running, pending = self.queue.snapshot()
        return _json({"queue_running": [_strip_item(i) for i in running],
                      "queue_pending": [_strip_item(i) for i in pending]})

    async def _post_queue(self, request: web.Request) -> web.Response:
        body = await _read_json_object(request, "invalid_request", "expected {\"clear\": true} or {\"delete\": [ids]}")
        if isinstance(body, web.Response):
            return body
        if body.get("clear"):
            self.queue.clear_pending()
        ids = body.get("delete")
        if ids is not None:
            if not isinstance(ids, list):
                return _error(400, "invalid_request", "'delete' must be a list of prompt ids")
            for pid in ids:
                if isinstance(pid, str):
                    self.queue.delete_pending(pid)
        return web.Response(status=200)

    async def _get_history(self, request: web.Request) -> web.Response:
        hist = self.queue.history()
        try:
            max_items = int(request.query["max_items"]) if "max_items" in request.query else None
            offset = int(request.query.get("offset", -1))
        except ValueError:
            return _error(400, "invalid_request", "max_items and offset must be integers")
        items = list(hist.items())
        if offset >= 0:
            items = items[offset:]
        if max_items is not None:
            items = items[-max_items:] if max_items > 0 else []
        return _json({k: _public_history(v) for k, v in items})

    async def _get_history_item(self, request: web.Request) -> web.Response:
        pid = request.match_info["prompt_id"]
        entry = self.queue.history().get(pid)
        return _json({pid: _public_history(entry)} if entry is not None else {})

    async def _post_history(self, request: web.Request) -> web.Response:
        body = await _read_json_object(request, "invalid_request", "expected {\"clear\": true} or {\"delete\": [ids]}")
        if isinstance(body, web.Response):
            return body
        if body.get("clear"):
            self.queue.clear_history()
        if isinstance(body.get("delete"), list):
            self.queue.delete_history(body["delete"])
        return web.Response(status=200)

    # -- jobs ------------------------------------------------------------------------------------------------------
    def _jobs(self) -> list[dict]:
        running, pending = self.queue.snapshot()
        jobs = [_queue_job(i, "in_progress") for i in running] + [_queue_job(i, "pending") for i in pending]
        jobs += [_history_job(pid, e) for pid, e in self.queue.history().items()]
        return jobs

    async def _get_jobs(self, request: web.Request) -> web.Response:
        q = request.query
        statuses = [s.strip().lower() for s in q.get("status", "").split(",") if s.strip()]
        bad = [s for s in statuses if s not in JOB_STATUSES]
        if bad:
            return _error(400, "invalid_request", f"invalid status value(s): {', '.join(bad)}",
                          f"valid: {', '.join(JOB_STATUSES)}")
        sort_by = q.get("sort_by", "created_at").lower()
        if sort_by not in ("created_at", "create_time", "execution_duration", "execution_time"):
            return _error(400, "invalid_request", "sort_by must be 'created_at' or 'execution_duration'")
        order = q.get("sort_order", "desc").lower()
        if order not in ("asc", "desc"):
            return _error(400, "invalid_request", "sort_order must be 'asc' or 'desc'")
        try:
            limit = int(q["limit"]) if "limit" in q else None
            offset = max(0, int(q.get("offset", 0)))
        except ValueError:
            return _error(400, "invalid_request", "limit and offset must be integers")
        if limit is not None and limit <= 0:
            return _error(400, "invalid_request", "limit must be a positive integer")
        jobs = [j for j in self._jobs() if not statuses or j["status"] in statuses]
        wid = q.get("workflow_id")
        if wid:
            jobs = [j for j in jobs if j.get("workflow_id") == wid]
        if sort_by.startswith("execution"):
            def key(j: dict) -> tuple:
                s, e = j.get("execution_start_time"), j.get("execution_end_time")
                return ((e - s) if s is not None and e is not None else -1, j["create_time"])
        else:
            def key(j: dict) -> tuple:
                return (j["create_time"], j.get("priority", 0))
        jobs.sort(key=key, reverse=order == "desc")
        total = len(jobs)
        page = jobs[offset:offset + limit] if limit is not None else jobs[offset:]
        return _json({"jobs": page, "pagination": {"offset": offset, "limit": limit if limit is not None else total,
                                                   "total": total, "has_more": offset + len(page) < total}})

    async def _get_job(self, request: web.Request) -> web.Response:
        jid = request.match_info["job_id"]
        running, pending = self.queue.snapshot()
        for status, items in (("in_progress", running), ("pending", pending)):
            for it in items:
                if it.prompt_id == jid:
                    job = _queue_job(it, status)
                    job["workflow"] = {"prompt": it.prompt, "extra_data": it.extra_data}
                    return _json(job)
        entry = self.queue.history().get(jid)
        if entry is None:
            return _error(404, "not_found", "Job not found")
        return _json(_history_job(jid, entry, full=True))


    async def _cancel_job(self, request: web.Request) -> web.Response:
        return _json({"cancelled": self.queue.cancel(request.match_info["job_id"])})

    async def _cancel_jobs(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        if isinstance(body, web.Response):
            return body
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return _error(400, "invalid_request", "job_ids must be a list")
        bad = [i if isinstance(i, str) else repr(i) for i in ids if not (isinstance(i, str) and _ID_RE.match(i))]
        if bad:
            return _error(400, "invalid_request", "job_ids contains invalid id(s)", invalid_ids=bad)
        cancelled = False
        for jid in ids:
            cancelled = self.queue.cancel(jid) or cancelled
        return _json({"cancelled": cancelled})

    async def _interrupt(self, request: web.Request) -> web.Response:
        prompt_id = None
        if request.can_read_body:
            try:
                body = json.loads(await request.text() or "{}")
            except ValueError:
                body = {}
            if isinstance(body, dict) and isinstance(body.get("prompt_id"), str):
                prompt_id = body["prompt_id"]
        self.queue.interrupt(prompt_id)
        return web.Response(status=200)

    async def _free(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        if isinstance(body, dict) and (body.get("free_memory") or body.get("unload_models")):
            self.queue.free()  # only between prompts: the cache belongs to the run while it runs
        return web.Response(status=200)


# ------------------------------------------------------------------------------------------------- formatting
def _strip_item(item: QueueItem) -> list:
    return item.as_tuple()


def _public_history(entry: dict | None) -> dict | None:
    if entry is None:
        return None
    return {**entry, "outputs": {k: public_ui(v) for k, v in entry.get("outputs", {}).items()}}


def _queue_job(item: QueueItem, status: str) -> dict:
    job = {"id": item.prompt_id, "status": status, "priority": item.number,
           "create_time": item.extra_data.get("create_time", 0), "outputs_count": 0,
           "previewable_outputs_count": 0}
    wid = _workflow_id(item.extra_data)
    if wid:
        job["workflow_id"] = wid
    return job


def _workflow_id(extra: dict) -> str | None:
    wf = (extra.get("extra_pnginfo") or {}).get("workflow") if isinstance(extra, dict) else None
    wid = wf.get("id") if isinstance(wf, dict) else None
    return wid if isinstance(wid, str) else None


_PREVIEWABLE = ("images", "video", "audio", "3d", "text")


def _history_job(pid: str, entry: dict, full: bool = False) -> dict:
    number, _, prompt, extra, _targets = entry["prompt"]
    status = entry.get("status") or {}
    start = end = err = None
    interrupted = False
    for ev, data in status.get("messages", []):
        if not isinstance(data, dict):
            continue
        if ev == "execution_start":
            start = data.get("timestamp")
        elif ev in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            if ev == "execution_error":
                err = data
            if ev == "execution_interrupted":
                interrupted = True
    outputs = entry.get("outputs") or {}
    count, previewable, preview = 0, 0, None
    for nid, ui in outputs.items():
        if not isinstance(ui, dict):
            continue
        for media, items in ui.items():
            if not isinstance(items, list):
                continue
            for it in items:
                if not isinstance(it, dict):
                    continue
                count += 1
                if media in _PREVIEWABLE:
                    previewable += 1
                    if preview is None or (preview.get("type") != "output" and it.get("type") == "output"):
                        preview = {**{k: v for k, v in it.items() if k != "path"}, "nodeId": str(nid),
                                   "mediaType": media}
    job: dict[str, Any] = {"id": pid, "status": "completed" if status.get("status_str") == "success" else (
        "cancelled" if interrupted else "failed"), "priority": number, "create_time": extra.get("create_time", 0),
        "outputs_count": count, "previewable_outputs_count": previewable}
    for k, v in (("execution_start_time", start), ("execution_end_time", end), ("execution_error", err),
                 ("preview_output", preview), ("workflow_id", _workflow_id(extra))):
        if v is not None:
            job[k] = v
    if full:
        job["outputs"] = {k: public_ui(v) for k, v in outputs.items()}
        job["execution_status"] = status
        job["workflow"] = {"prompt": prompt, "extra_data": extra}
    return job
