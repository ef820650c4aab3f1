"""BigGAN-deep weights: the reference's folder layout, our safetensors, named models, caches and downloads.

* A **reference folder** holds ``config.json`` and ``pytorch_model.bin`` (a ``torch.save``-d state dict, read with
  ``torch.load(weights_only=True)``: tensors only, never arbitrary pickles) or ``model.safetensors``, with the keys of
  ``pytorch_pretrained_biggan.BigGAN`` (``generator.layers.3.bn_1.scale.weight_orig`` ...). :func:`load_reference`
  converts it (spectral norm folded in with the stored ``u``/``v``, as the reference's eval mode computes it).
* A **native file** is one ``.safetensors`` written by :func:`collage_core.save_generator` (config with
  ``family: biggan-deep`` and the class names in its header); ``neural-collage convert`` writes one.
* A **name** ``biggan-deep-128`` / ``-256`` / ``-512`` resolves, in order, to: our cache
  (``$NEURAL_COLLAGE_CACHE/biggan/NAME.safetensors``, default ``~/.cache/neural-collage``); a reference folder
  ``$NEURAL_COLLAGE_CACHE/biggan/NAME/``; the reference package's download cache (``$PYTORCH_PRETRAINED_BIGGAN_CACHE``,
  default ``~/.pytorch_pretrained_biggan``); otherwise a download of the reference's published files (with a progress
  bar). Whatever is found is converted once into our cache. ``hf:owner/repo[@revision]`` fetches a reference folder
  from the Hugging Face Hub (needs the ``hf`` extra, ``huggingface_hub``). ``NEURAL_COLLAGE_OFFLINE=1`` forbids
  downloads; offline, the error says where to put the files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from .biggan import BigGANConfig, BigGANGenerator
from .checkpoint_format import CheckpointError, load_state, save_generator

_S3 = "https://s3.amazonaws.com/models.huggingface.co/biggan"
#: the reference package's published files: name -> (weights URL, config URL)
REFERENCE_URLS = {f"biggan-deep-{r}": (f"{_S3}/biggan-deep-{r}-pytorch_model.bin", f"{_S3}/biggan-deep-{r}-config.json")
                  for r in (128, 256, 512)}
NAMES = tuple(REFERENCE_URLS)
WEIGHTS_NAMES = ("model.safetensors", "pytorch_model.bin")


class BigGANFileError(CheckpointError):
    """A BigGAN file or name that cannot be used; the message says why and what to do."""


def is_biggan_name(name: str) -> bool:
    """``biggan-deep-128/256/512`` or ``hf:owner/repo[@revision]``."""
    return name in REFERENCE_URLS or bool(re.fullmatch(r"hf:[\w.-]+/[\w.-]+(@[\w./-]+)?", name))


def is_reference_folder(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "config.json").is_file() and any((p / w).is_file() for w in WEIGHTS_NAMES)


def cache_root() -> Path:
    return Path(os.environ.get("NEURAL_COLLAGE_CACHE") or Path.home() / ".cache" / "neural-collage").expanduser()


def reference_cache() -> Path:
    default = Path.home() / ".pytorch_pretrained_biggan"
    return Path(os.environ.get("PYTORCH_PRETRAINED_BIGGAN_CACHE") or default).expanduser()


# ------------------------------------------------------------------------------------------ reference layout
def read_reference(folder: str | os.PathLike) -> tuple[BigGANConfig, dict[str, torch.Tensor]]:
    """The config and raw state dict of a reference folder (no unpickling beyond tensors)."""
    p = Path(folder)
    cfg_path = p / "config.json"
    if not cfg_path.is_file():
        raise BigGANFileError(f"{p}: no config.json (a BigGAN folder holds config.json and pytorch_model.bin or "
                              f"model.safetensors)")
    try:
        cfg = BigGANConfig.from_reference(json.loads(cfg_path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BigGANFileError(f"{cfg_path} is not valid JSON ({e})") from None
    except (TypeError, ValueError) as e:
        raise BigGANFileError(f"{cfg_path} does not describe a BigGAN-deep generator: {e}") from None
    return cfg, read_reference_weights(p)


def read_reference_weights(folder: Path) -> dict[str, torch.Tensor]:
    st, pt = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st.is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(st))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise BigGANFileError(f"{st} is not a readable safetensors file ({e})") from None
    if not pt.is_file():
        raise BigGANFileError(f"{folder}: no pytorch_model.bin or model.safetensors next to config.json")
    try:
        state = torch.load(str(pt), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types (UnpicklingError, RuntimeError, EOFError ...)
        raise BigGANFileError(f"{pt} cannot be read as a state dict of tensors with torch.load(weights_only=True) "
                              f"({type(e).__name__}: {str(e)[:300]})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BigGANFileError(f"{pt} does not hold a state dict of tensors")
    return dict(state)


def _sn_weight(state: Mapping[str, torch.Tensor], prefix: str, eps: float, used: set[str]) -> torch.Tensor:
    """``W / sigma`` as ``torch.nn.utils.spectral_norm`` computes it in eval mode: ``sigma = u . (W v)``."""
    if f"{prefix}.weight_orig" not in state and f"{prefix}.weight" in state:  # spectral norm already removed
        used.add(f"{prefix}.weight")
        return state[f"{prefix}.weight"].float()
    keys = [f"{prefix}.weight_orig", f"{prefix}.weight_u"]
    missing = [k for k in keys if k not in state]
    if missing:
        raise KeyError(missing[0])
    used.update(keys)
    w, u = state[keys[0]].float(), state[keys[1]].float()
    wm = w.reshape(w.shape[0], -1)
    v = state.get(f"{prefix}.weight_v")
    if v is None:  # files without v: the reference's converter sets v = normalize(W^T u)
        v = F.normalize(torch.mv(wm.t(), u), dim=0, eps=eps)
    else:
        used.add(f"{prefix}.weight_v")
        v = v.float()
    sigma = torch.dot(u, torch.mv(wm, v))
    return w / sigma


def convert_reference_state(state: Mapping[str, torch.Tensor], cfg: BigGANConfig, source: str = "state dict"
                            ) -> dict[str, torch.Tensor]:
    """The reference's state dict as ours (see :class:`~collage_core.biggan.BigGANGenerator`)."""
    used: set[str] = set()

    def get(key: str) -> torch.Tensor:
        used.add(key)
        return state[key].float()

    z, ch = cfg.z_dim, cfg.channel_width
    out: dict[str, torch.Tensor] = {}
    try:
        out["embed"] = get("embeddings.weight")
        w = _sn_weight(state, "generator.gen_z", cfg.eps, used)
        b = get("generator.gen_z.bias")
        c16 = 16 * ch
        # reference rows are (h, w, c) (TF layout); ours are (c, h, w)
        idx = (torch.arange(16)[None, :] * c16 + torch.arange(c16)[:, None]).reshape(-1)
        if w.shape[0] != 16 * c16:
            raise BigGANFileError(f"{source}: generator.gen_z has {w.shape[0]} outputs; config.json's channel_width "
                                  f"{ch} needs {16 * c16}")
        out["head_wz"], out["head_we"], out["head_b"] = w[idx, :z], w[idx, z:], b[idx]
        wz, we, means, variances = [], [], [], []
        p = cfg.attention_layer_position
        for k in range(cfg.n_blocks):
            i = k + (1 if 0 <= p <= k else 0)  # the attention layer takes one index in generator.layers
            pre = f"generator.layers.{i}"
            for j in range(4):
                bn = f"{pre}.bn_{j}"
                s, o = _sn_weight(state, f"{bn}.scale", cfg.eps, used), _sn_weight(state, f"{bn}.offset", cfg.eps,
                                                                                   used)
                wz.append(torch.stack([s[:, :z], o[:, :z]]))
                we.append(torch.stack([s[:, z:], o[:, z:]]))
                means.append(get(f"{bn}.running_means"))
                variances.append(get(f"{bn}.running_vars"))
            for j in range(4):
                out[f"blocks.{k}.conv_{j}.W"] = _sn_weight(state, f"{pre}.conv_{j}", cfg.eps, used)
                out[f"blocks.{k}.conv_{j}.b"] = get(f"{pre}.conv_{j}.bias")
        out["bn_wz"], out["bn_we"] = torch.cat(wz, 1), torch.cat(we, 1)
        out["bn_means"], out["bn_vars"] = torch.cat(means, 1), torch.cat(variances, 1)
        if 0 <= p < cfg.n_blocks:
            pre = f"generator.layers.{p}"
            parts = [_sn_weight(state, f"{pre}.snconv1x1_{n}", cfg.eps, used) for n in ("theta", "phi", "g")]
            out["attention.qkv"] = torch.cat([t.flatten(1) for t in parts], 0)
            out["attention.o"] = _sn_weight(state, f"{pre}.snconv1x1_o_conv", cfg.eps, used).flatten(1)
            out["attention.gamma"] = get(f"{pre}.gamma")
        for ours, ref in (("out_bn_weight", "weight"), ("out_bn_bias", "bias"), ("out_bn_means", "running_means"),
                          ("out_bn_vars", "running_vars")):
            out[ours] = get(f"generator.bn.{ref}")
        out["to_rgb.W"] = _sn_weight(state, "generator.conv_to_rgb", cfg.eps, used)[:3]  # the reference keeps 3
        out["to_rgb.b"] = get("generator.conv_to_rgb.bias")[:3]
    except KeyError as e:
        raise BigGANFileError(f"{source} does not fit config.json's BigGAN-deep layout ({cfg.n_blocks} blocks, "
                              f"attention at {cfg.attention_layer_position}): missing key {e.args[0]}") from None
    extra = sorted(set(state) - used)
    if extra:
        more = " ..." if len(extra) > 10 else ""
        raise BigGANFileError(f"{source} has keys that config.json's layout does not use ({len(extra)}): "
                              f"{', '.join(extra[:10])}{more}")
    return out


def load_reference(folder: str | os.PathLike) -> BigGANGenerator:
    """A generator from a reference folder (``config.json`` + ``pytorch_model.bin`` / ``model.safetensors``)."""
    cfg, state = read_reference(folder)
    G = BigGANGenerator(cfg)
    try:
        load_state(G, convert_reference_state(state, cfg, str(folder)), str(folder))
    except CheckpointError as e:
        raise BigGANFileError(str(e)) from None
    G.provenance = {"source": "pytorch-pretrained-biggan", "path": str(folder)}
    return G


# ---------------------------------------------------------------------------------------- names and caches
def _where_to_put(name: str) -> str:
    folder = cache_root() / "biggan" / name
    if name in REFERENCE_URLS:
        w, c = REFERENCE_URLS[name]
        return (f"download {c} as config.json and {w} as pytorch_model.bin into {folder}/ (or give that folder's "
                f"path instead of the name), or let the pytorch-pretrained-biggan package download them into "
                f"{reference_cache()} (BigGAN.from_pretrained({name!r}))")
    return ("put its config.json and pytorch_model.bin (or model.safetensors) in a folder and give the folder's "
            "path, or install the hf extra (pip install 'neural-collage[hf]') and allow downloads")


def _in_reference_cache(name: str) -> Path | None:
    """A reference folder assembled from the reference package's download cache (files named by URL hash, each
    with a ``.json`` note of its URL), or None."""
    root = reference_cache()
    if name not in REFERENCE_URLS or not root.is_dir():
        return None
    want = dict(zip(REFERENCE_URLS[name], ("pytorch_model.bin", "config.json")))
    found: dict[str, Path] = {}
    for meta in root.glob("*.json"):
        try:
            url = json.loads(meta.read_text(encoding="utf-8")).get("url")
        except (OSError, ValueError, AttributeError):
            continue
        data = meta.with_suffix("")
        if url in want and data.is_file():
            found[want[url]] = data
    if len(found) < 2:
        return None
    tmp = Path(tempfile.mkdtemp(prefix="biggan-ref-"))
    for target, src in found.items():
        try:
            os.symlink(src, tmp / target)
        except OSError:
            shutil.copyfile(src, tmp / target)
    return tmp


def _download(url: str, dest: Path) -> None:
    """``url`` to ``dest`` with a progress bar (written to a temporary name, then moved)."""
    from tqdm import tqdm

    tmp = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:  # noqa: S310 - fixed https URLs
        total = int(r.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            while chunk := r.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))
    os.replace(tmp, dest)


def _fetch(name: str) -> Path:
    """A reference folder for ``name`` downloaded into our cache (network)."""
    if os.environ.get("NEURAL_COLLAGE_OFFLINE", "") not in ("", "0"):
        raise BigGANFileError(f"{name!r} is not on this machine and downloads are off (NEURAL_COLLAGE_OFFLINE): "
                              + _where_to_put(name))
    if name.startswith("hf:"):
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise BigGANFileError(f"{name!r}: Hugging Face Hub downloads need huggingface_hub "
                                  f"(pip install 'neural-collage[hf]')") from None
        repo, _, rev = name[3:].partition("@")
        try:
            return Path(snapshot_download(repo, revision=rev or None,
                                          allow_patterns=["config.json", *WEIGHTS_NAMES]))
        except Exception as e:  # hub errors are many types
            raise BigGANFileError(f"could not download {repo!r} from the Hugging Face Hub ({type(e).__name__}: "
                                  f"{str(e)[:200]}); " + _where_to_put(name)) from None
    folder = cache_root() / "biggan" / f"{name}.download"
    w, c = REFERENCE_URLS[name]
    try:
        _download(c, folder / "config.json")
        _download(w, folder / "pytorch_model.bin")
    except OSError as e:  # URLError is an OSError
        raise BigGANFileError(f"{name!r} is not on this machine and could not be downloaded ({e}): "
                              + _where_to_put(name)) from None
    return folder


def _cache_key(name: str) -> str:
    return name if name in REFERENCE_URLS else "hf/" + name[3:].replace("/", "--").replace("@", "--")


def is_on_this_machine(name: str) -> bool:
    """Whether :func:`resolve` finds the weights of a BigGAN name without a download (our cache, a reference folder
    in it, or the reference package's download cache)."""
    key = _cache_key(name)
    if (cache_root() / "biggan" / f"{key}.safetensors").is_file() or is_reference_folder(cache_root() / "biggan" / key):
        return True
    found = _in_reference_cache(name)
    if found is not None:
        shutil.rmtree(found, ignore_errors=True)
        return True
    return False


_REACHABLE: dict[str, tuple[float, str | None]] = {}


def download_problem(name: str, timeout: float = 3.0) -> str | None:
    """Why the weights of a BigGAN name that is not on this machine cannot be downloaded from here (downloads
    turned off, or the server cannot be reached), or None when a download can start. The answer about a server is
    kept for a minute, so validating many workflows asks once."""
    import socket
    import time
    from urllib.parse import urlparse

    if os.environ.get("NEURAL_COLLAGE_OFFLINE", "") not in ("", "0"):
        return "downloads are off (NEURAL_COLLAGE_OFFLINE)"
    if name.startswith("hf:"):
        try:
            import huggingface_hub  # noqa: F401
        except ImportError:
            return "Hugging Face Hub downloads need huggingface_hub (pip install 'neural-collage[hf]')"
        host = "huggingface.co"
    else:
        host = urlparse(REFERENCE_URLS[name][0]).hostname or ""
    seen = _REACHABLE.get(host)
    if seen is None or time.monotonic() - seen[0] > 60:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            seen = (time.monotonic(), None)
        except OSError as e:
            seen = (time.monotonic(), f"{host} cannot be reached from this machine ({type(e).__name__}: {e})")
        _REACHABLE[host] = seen
    return seen[1]


def availability_problem(name: str) -> str | None:
    """None when a BigGAN name can be loaded here (its weights are on this machine, or can be downloaded now);
    otherwise what is missing and what to do, for a validation message."""
    if is_on_this_machine(name):
        return None
    why = download_problem(name)
    if why is None:
        return None
    size = " (about 0.2-0.3 GB)" if name in REFERENCE_URLS else ""
    return (f"{name!r}: its weights{size} are not on this machine and {why}. Download them once where there is "
            f"internet (neural-collage convert {name} {name}.safetensors) and give that file's path instead of the "
            f"name, or " + _where_to_put(name))


def resolve(name: str, download: bool = True) -> Path:
    """Our native ``.safetensors`` of a BigGAN name (converting, and downloading if allowed, once)."""
    if not is_biggan_name(name):
        raise BigGANFileError(f"{name!r} is not a BigGAN name (known: {', '.join(NAMES)}, or hf:owner/repo)")
    key = _cache_key(name)
    native = cache_root() / "biggan" / f"{key}.safetensors"
    if native.is_file():
        return native
    local = cache_root() / "biggan" / key
    source = local if is_reference_folder(local) else _in_reference_cache(name)
    downloaded = None
    if source is None:
        if not download:
            raise BigGANFileError(f"{name!r} is not on this machine: " + _where_to_put(name))
        source = downloaded = _fetch(name)
    try:
        G = load_reference(source)
        save_generator(G, native, provenance={"source": "pytorch-pretrained-biggan", "name": name})
    finally:
        if source.name.startswith("biggan-ref-"):  # the folder of links into the reference's cache
            shutil.rmtree(source, ignore_errors=True)
    if downloaded is not None and downloaded.name.endswith(".download"):
        shutil.rmtree(downloaded, ignore_errors=True)
    return native
