"""The file routes of the server: ``/view``, ``/upload/image``, workflow templates, ``user.css``, settings and
user data, every client-named path confined by :func:`~collage_engine.server.protocol.safe_join`.

:class:`FilesMixin` is a part of :class:`~collage_engine.server.PromptServer`; its folders are made in
``PromptServer.__init__``.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import re
import shutil
import tempfile
import threading
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .protocol import PathRefused, _check_part, _error, _json, _plain_name, _read_json, _read_json_object, safe_join

FOLDER_TYPES = ("output", "input", "temp")
UPLOAD_CHUNK = 1 << 16
_INLINE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/avif",
                 "video/mp4", "video/webm", "audio/mpeg", "audio/wav", "audio/x-wav", "audio/ogg", "audio/flac",
                 "application/json", "text/plain"}


class FilesMixin:
    """Folders, uploads, downloads, templates, settings and user data of the server (:class:`PromptServer`)."""

    output_dir: str
    input_dir: str
    temp_dir: str
    user_dir: str
    templates: dict[str, str]
    default_settings: dict
    max_upload_bytes: int
    _settings_lock: threading.Lock

    # -- folders ----------------------------------------------------------------------------------------------
    def folder(self, kind: str | None) -> str:
        """The folder of an upload/view ``type`` (output, input, temp); ``PathRefused`` for others."""
        kind = kind or "output"
        if kind == "output":
            return self.output_dir
        if kind == "input":
            return self.input_dir
        if kind == "temp":
            return self.temp_dir
        raise PathRefused(f"type must be one of {', '.join(FOLDER_TYPES)}")

    def user_root(self, request: web.Request | None = None) -> str:
        """The (single) user's data folder: ``user/default``."""
        path = os.path.join(self.user_dir, "default")
        os.makedirs(path, exist_ok=True)
        return path

    # -- files ----------------------------------------------------------------------------------------------------
    async def _view(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        filename = _plain_name(q.get("filename", ""))
        path = safe_join(self.folder(q.get("type")), q.get("subfolder", ""), filename)
        if not os.path.isfile(path):
            return _error(404, "not_found", "file not found", filename)
        ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
        if ctype in _INLINE_TYPES:
            headers["Content-Disposition"] = f'inline; filename="{_header_name(filename)}"'
        else:
            ctype = "application/octet-stream"
            headers["Content-Disposition"] = f'attachment; filename="{_header_name(filename)}"'
        headers["Content-Type"] = ctype
        return web.FileResponse(path, headers=headers)

    async def _read_upload(self, request: web.Request) -> tuple[str, str, dict[str, str]] | web.Response:
        """Read a multipart upload: its ``image`` file into a temporary file of the temp folder, and its small
        fields; ``(tmp_path, original file name, fields)`` or an error response (the temporary file is removed)."""
        limit = self.max_upload_bytes
        if request.content_length is not None and request.content_length > limit + (1 << 16):
            return _error(413, "too_large", "upload too large", f"at most {limit} bytes")
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError):
            return _error(400, "invalid_request", "expected a multipart/form-data upload with an 'image' file")
        fields: dict[str, str] = {}
        tmp_path, orig_name, size = None, None, 0
        try:
            while True:
                part = await reader.next()
                if part is None:
                    break
                name = getattr(part, "name", None)
                if name == "image" and getattr(part, "filename", None) is not None and tmp_path is None:
                    orig_name = part.filename
                    fd, tmp_path = tempfile.mkstemp(prefix=".upload-", dir=self.temp_dir)
                    with os.fdopen(fd, "wb") as f:
                        while True:
                            chunk = await part.read_chunk(UPLOAD_CHUNK)
                            if not chunk:
                                break
                            size += len(chunk)
                            if size > limit:
                                return _error(413, "too_large", "upload too large", f"at most {limit} bytes")
                            f.write(chunk)
                elif name in ("overwrite", "type", "subfolder", "original_ref"):
                    value = await part.read(decode=True)
                    if len(value) > 4096:
                        return _error(400, "invalid_request", f"field {name!r} too long")
                    fields[name] = value.decode("utf-8", "replace")
                else:
                    await part.release()
            if tmp_path is None:
                return _error(400, "invalid_request", "no 'image' file in the upload")
            result, tmp_path = (tmp_path, orig_name or "", fields), None
            return result
        except (HttpProcessingError, ValueError, AssertionError) as e:  # a malformed part (e.g. a NUL in a name)
            return _error(400, "invalid_request", "malformed multipart upload", getattr(e, "message", "") or str(e))
        finally:
            _remove(tmp_path)

    def _store_upload(self, tmp_path: str, orig_name: str, fields: dict[str, str]) -> web.Response:
        """Move an uploaded file to its folder (``type``, ``subfolder``; a new name unless ``overwrite``) and answer
        ComfyUI's ``{name, subfolder, type}``."""
        try:
            filename = _plain_name(os.path.basename(orig_name.replace("\\", "/")) or "", "file name")
            if filename.startswith("."):
                raise PathRefused("file name must not start with '.'")
            if len(filename.encode("utf-8", "surrogatepass")) > 240 or any(ord(c) < 32 for c in filename):
                raise PathRefused("file name must be at most 240 bytes, without control characters")
            kind = fields.get("type") or "input"
            base = self.folder(kind)
            subfolder = fields.get("subfolder", "")
            folder = safe_join(base, subfolder)
        except PathRefused as e:  # ComfyUI answers every refused upload path with 400
            return _error(400, "invalid_path", "upload refused", str(e))
        os.makedirs(folder, exist_ok=True)
        folder = safe_join(base, subfolder)  # again, now that it exists (symlinks)
        overwrite = fields.get("overwrite", "").lower() in ("true", "1")
        target = os.path.join(folder, filename)
        if not overwrite:
            stem, ext = os.path.splitext(filename)
            n = 1
            while os.path.lexists(target):
                if os.path.isfile(target) and _same_content(target, tmp_path):
                    break
                filename = f"{stem} ({n}){ext}"
                target = os.path.join(folder, filename)
                n += 1
        elif os.path.islink(target):
            return _error(400, "invalid_path", "upload refused", "the target is a symbolic link")
        if os.path.isdir(target):  # never move the upload into a folder of that name
            return _error(400, "invalid_path", "upload refused", f"{filename!r} is a folder there; choose another name")
        try:
            shutil.move(tmp_path, target)
        except OSError as e:
            return _error(400, "invalid_path", "upload refused", f"cannot store {filename!r}: {e.strerror or e}")
        rel_sub = os.path.relpath(folder, os.path.realpath(base)).replace(os.sep, "/")
        return _json({"name": filename, "subfolder": "" if rel_sub == "." else rel_sub, "type": kind})

    async def _upload_image(self, request: web.Request) -> web.Response:
        got = await self._read_upload(request)
        if isinstance(got, web.Response):
            return got
        tmp_path, orig_name, fields = got
        try:
            return self._store_upload(tmp_path, orig_name, fields)
        finally:
            _remove(tmp_path)

    async def _upload_mask(self, request: web.Request) -> web.Response:
        """ComfyUI's mask editor: the uploaded picture's alpha becomes the alpha of the original picture that
        ``original_ref`` (``{filename, subfolder, type}``; ``filename`` may end in `` [input]``) names; the result
        (the original's pixels and text chunks, the new alpha) is stored like an image upload."""
        got = await self._read_upload(request)
        if isinstance(got, web.Response):
            return got
        tmp_path, orig_name, fields = got
        try:
            try:
                ref = json.loads(fields.get("original_ref") or "")
            except ValueError:
                ref = None
            if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str) or not ref["filename"]:
                return _error(400, "invalid_request", "original_ref must be JSON naming the original picture",
                              'e.g. {"filename": "photo.png", "subfolder": "", "type": "input"}')
            name, kind = ref["filename"], ref.get("type") or "output"
            m = re.fullmatch(r"(.*) \[(input|output|temp)\]", name)
            if m:
                name, kind = m.group(1), m.group(2)
            try:
                original = safe_join(self.folder(kind), str(ref.get("subfolder") or ""), _plain_name(name))
            except PathRefused as e:
                return _error(400, "invalid_path", "original_ref refused", str(e))
            if not os.path.isfile(original):
                return _error(404, "not_found", "the original picture of original_ref is not there", name)
            async with self._decode_slot():  # one decode at a time: concurrent uploads share one budget
                problem = await asyncio.get_running_loop().run_in_executor(None, _put_alpha, original, tmp_path)
            if problem:
                return _error(400, "invalid_request", "cannot apply the mask", problem)
            return self._store_upload(tmp_path, orig_name, fields)
        finally:
            _remove(tmp_path)

    def _decode_slot(self) -> asyncio.Semaphore:
        sem = getattr(self, "_decode_semaphore", None)
        if sem is None:
            sem = self._decode_semaphore = asyncio.Semaphore(1)
        return sem

    # -- editor extensions (ComfyUI's WEB_DIRECTORY of a node pack) ----------------------------------------------
    extensions: dict[str, str]

    async def _list_extensions(self, request: web.Request) -> web.Response:
        """The ``.js`` files of every extension folder as ``/extensions/NAME/PATH`` (what the editor imports)."""
        out = []
        for name, folder in self.extensions.items():
            for path in _walk_files(folder, True) if os.path.isdir(folder) else []:
                if path.endswith(".js"):
                    rel = os.path.relpath(path, folder).replace(os.sep, "/")
                    out.append(f"/extensions/{quote(name)}/{quote(rel)}")
        return _json(out)

    def _extension_files(self, name: str) -> Any:
        """The handler of ``/extensions/NAME/{path}``: files of that extension folder only (confined)."""
        folder = self.extensions[name]

        async def handler(request: web.Request) -> web.StreamResponse:
            path = safe_join(folder, request.match_info["path"])
            if not os.path.isfile(path):
                return _error(404, "not_found", "no such extension file", request.match_info["path"])
            ctype = "text/javascript" if path.endswith(".js") else (mimetypes.guess_type(path)[0]
                                                                    or "application/octet-stream")
            return web.FileResponse(path, headers={"Content-Type": ctype, "X-Content-Type-Options": "nosniff",
                                                   "Cache-Control": "no-cache"})
        return handler

    # -- templates ------------------------------------------------------------------------------------------------
    async def _workflow_templates(self, request: web.Request) -> web.Response:
        """``{module: [template names]}``: the ``*.json`` workflows of each ``templates`` folder."""
        return _json({m: sorted(f[:-5] for f in os.listdir(d) if f.endswith(".json"))
                      for m, d in self.templates.items() if os.path.isdir(d)})

    async def _workflow_template_file(self, request: web.Request) -> web.StreamResponse:
        folder = self.templates.get(request.match_info["module"])
        if folder is None:
            return _error(404, "not_found", "no such template module")
        path = safe_join(folder, _plain_name(request.match_info["file"]))
        if not os.path.isfile(path):
            return _error(404, "not_found", "no such template file")
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return web.FileResponse(path, headers={"Content-Type": ctype, "X-Content-Type-Options": "nosniff"})

    async def _user_css(self, request: web.Request) -> web.StreamResponse:
        """The user's ``user.css`` (user folder), else an empty style sheet (index.html always asks for it)."""
        path = os.path.join(self.user_root(), "user.css")
        if os.path.isfile(path) and not os.path.islink(path):  # a link could point anywhere on the machine
            return web.FileResponse(path, headers={"Content-Type": "text/css"})
        return web.Response(text="", content_type="text/css")

    # -- settings and user data --------------------------------------------------------------------------------
    def _settings_path(self) -> str:
        return os.path.join(self.user_root(), "comfy.settings.json")

    def _load_settings(self) -> dict:
        """The saved settings; ``default_settings`` until the user saved any."""
        try:
            with open(self._settings_path(), encoding="utf-8") as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return dict(self.default_settings)
        except (OSError, ValueError):
            return {}

    def _save_settings(self, settings: dict) -> None:
        _atomic_write(self._settings_path(), json.dumps(settings, indent=2).encode())

    async def _get_settings(self, request: web.Request) -> web.Response:
        return _json(self._load_settings())

    async def _get_setting(self, request: web.Request) -> web.Response:
        return _json(self._load_settings().get(request.match_info["id"]))

    async def _post_settings(self, request: web.Request) -> web.Response:
        body = await _read_json_object(request, "invalid_request", "settings must be a JSON object")
        if isinstance(body, web.Response):
            return body
        with self._settings_lock:
            self._save_settings({**self._load_settings(), **body})
        return web.Response(status=200)

    async def _post_setting(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        if isinstance(body, web.Response):
            return body
        with self._settings_lock:
            settings = self._load_settings()
            settings[request.match_info["id"]] = body
            self._save_settings(settings)
        return web.Response(status=200)

    async def _get_users(self, request: web.Request) -> web.Response:
        return _json({"storage": "server", "migrated": True})

    async def _post_users(self, request: web.Request) -> web.Response:
        return _error(400, "invalid_request", "this server has a single user (default)")

    def _user_file(self, rel: str) -> str:
        rel = _check_part(rel, "file")
        if not rel or rel.endswith("/"):
            raise PathRefused("file must name a file")
        if any(seg.startswith((".tmp-", ".upload-")) for seg in rel.split("/")):
            raise PathRefused("names starting with '.tmp-' or '.upload-' are the server's own temporary files")
        return safe_join(self.user_root(), rel)

    async def _list_userdata(self, request: web.Request) -> web.Response:
        directory = request.query.get("dir", "")
        if not directory:
            return _error(400, "invalid_request", "Directory not provided", "the query needs dir=...")
        root = safe_join(self.user_root(), directory)
        if not os.path.isdir(root):
            return _error(404, "not_found", "Directory not found", directory)
        recurse = request.query.get("recurse", "").lower() == "true"
        full = request.query.get("full_info", "").lower() == "true"
        split = request.query.get("split", "").lower() == "true"
        out: list[Any] = []
        for path in _walk_files(root, recurse):
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if full:
                out.append(_file_info(path, root))
            elif split:
                out.append([rel] + rel.split("/"))
            else:
                out.append(rel)
        return _json(out)

    async def _list_userdata_v2(self, request: web.Request) -> web.Response:
        rel = request.query.get("path", "")
        user = self.user_root()
        root = safe_join(user, rel)
        if not os.path.exists(root):
            return _error(404, "not_found", "Requested path not found", rel)
        if not os.path.isdir(root):
            return _error(400, "invalid_request", "Requested path is not a directory", rel)
        out = []
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            p = os.path.relpath(entry.path, user).replace(os.sep, "/")
            if entry.is_dir(follow_symlinks=False):
                out.append({"name": entry.name, "path": p, "type": "directory"})
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat()
                out.append({"name": entry.name, "path": p, "type": "file", "size": st.st_size,
                            "modified": st.st_mtime})
        return _json(out)

    async def _get_userdata(self, request: web.Request) -> web.StreamResponse:
        path = self._user_file(request.match_info["file"])
        if not os.path.isfile(path):
            return _error(404, "not_found", "file not found", request.match_info["file"])
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return web.FileResponse(path, headers={"Content-Type": ctype, "X-Content-Type-Options": "nosniff",
                                               "Cache-Control": "no-cache"})

    async def _post_userdata(self, request: web.Request) -> web.Response:
        path = self._user_file(request.match_info["file"])
        overwrite = request.query.get("overwrite", "true") != "false"
        full = request.query.get("full_info", "false").lower() == "true"
        if not overwrite and os.path.exists(path):
            return _error(409, "conflict", "File already exists", "add ?overwrite=true to replace it")
        body = await request.read()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        path = self._user_file(request.match_info["file"])  # again, now that the folder exists
        _atomic_write(path, body)
        user = os.path.realpath(self.user_root())
        return _json(_file_info(path, user) if full else os.path.relpath(path, user).replace(os.sep, "/"))

    async def _delete_userdata(self, request: web.Request) -> web.Response:
        path = self._user_file(request.match_info["file"])
        if not os.path.isfile(path):
            return _error(404, "not_found", "file not found", request.match_info["file"])
        os.unlink(path)
        return web.Response(status=204)

    async def _move_userdata(self, request: web.Request) -> web.Response:
        src = self._user_file(request.match_info["file"])
        dest = self._user_file(request.match_info["dest"])
        if not os.path.isfile(src):
            return _error(404, "not_found", "file not found", request.match_info["file"])
        overwrite = request.query.get("overwrite", "true") != "false"
        if not overwrite and os.path.exists(dest):
            return _error(409, "conflict", "File already exists", "add ?overwrite=true to replace it")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(src, dest)
        user = os.path.realpath(self.user_root())
        full = request.query.get("full_info", "false").lower() == "true"
        return _json(_file_info(dest, user) if full else os.path.relpath(dest, user).replace(os.sep, "/"))


# ------------------------------------------------------------------------------------------------- helpers
def _remove(path: str | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


#: the largest picture the mask editor's upload decodes (two RGBA copies of it are held: ~8 bytes a pixel)
MAX_MASK_PIXELS = 50_000_000


def _put_alpha(original: str, mask_path: str, max_pixels: int = MAX_MASK_PIXELS) -> str | None:
    """Write into ``mask_path`` (PNG) the ``original`` picture with the alpha channel of the picture in
    ``mask_path``, keeping the original's PNG text chunks; a message instead when that cannot be done (pictures over
    ``max_pixels`` are refused from their headers, before anything is decoded)."""
    from PIL import Image, PngImagePlugin

    try:
        for path, what in ((mask_path, "the mask"), (original, "the original")):
            with Image.open(path) as im:
                if im.width * im.height > max_pixels:
                    return (f"{what} is {im.width}x{im.height} ({im.width * im.height / 1e6:.0f} MP); the mask editor "
                            f"takes pictures up to {max_pixels / 1e6:.0f} MP")
        with Image.open(mask_path) as m:
            alpha = m.convert("RGBA").getchannel("A")
        with Image.open(original) as o:
            info = PngImagePlugin.PngInfo()
            for k, v in (getattr(o, "text", None) or {}).items():
                info.add_text(k, v)
            pic = o.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return f"not a readable picture: {e}"
    if alpha.size != pic.size:
        return f"the mask is {alpha.size[0]}x{alpha.size[1]}, the original {pic.size[0]}x{pic.size[1]}; they must match"
    pic.putalpha(alpha)
    pic.save(mask_path, format="PNG", pnginfo=info, compress_level=4)
    return None


def _header_name(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9._ ()-]', "_", name)


def _same_content(a: str, b: str) -> bool:
    try:
        if os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x, y = fa.read(1 << 16), fb.read(1 << 16)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _walk_files(root: str, recurse: bool) -> list[str]:
    out = []
    if recurse:
        for dirpath, dirnames, filenames in os.walk(root):  # does not follow symlinked folders
            dirnames.sort()
            out += [os.path.join(dirpath, f) for f in sorted(filenames)
                    if os.path.isfile(os.path.join(dirpath, f))]
    else:
        out = [e.path for e in sorted(os.scandir(root), key=lambda e: e.name) if e.is_file()]
    return out


def _file_info(path: str, root: str) -> dict:
    st = os.stat(path)
    return {"path": os.path.relpath(path, root).replace(os.sep, "/"), "size": st.st_size,
            "modified": int(st.st_mtime * 1000), "created": int(st.st_ctime * 1000)}
