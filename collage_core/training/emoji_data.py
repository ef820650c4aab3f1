"""Training data for the embedded default model: emoji animal heads from openly licensed emoji sets.

``prepare_emoji_animals(out_dir)`` fetches pinned npm packages (``npm pack NAME@VERSION``, checked against
their registry integrity hash) into a cache folder, rasterises every head/face icon per class and art style
(the style's head and its variants: expressions, the three wise monkeys),
composites it centred on white and writes::

    out_dir/train/<class>/<style>.png            every training style (all allowed sets except OpenMoji)
    out_dir/train/<class>/<style>--<icon>.png    variants of that head (cat expressions, wise monkeys, ...)
    out_dir/test_openmoji/<class>/openmoji.png   held-out OpenMoji heads (CC-BY-SA-4.0: never used to train)
    out_dir/manifest.json                        one record per image (class, index, style, package, licence...)
    out_dir/ATTRIBUTION.md                       packages, versions, licences, authors, icons used
    out_dir/contact_sheet.png                    one row per class, one column per style, for checking by eye
                                                 (each style's head; "+N" counts its variants)

The output is byte-identical for the same arguments and rasteriser version: exact package versions, a
deterministic rasteriser (resvg, system fonts skipped), PNGs written by Pillow with no metadata, JSON with
a fixed key order. Nothing here touches the network at import time, and the rasteriser (``resvg-py``) is
imported only when an SVG is rendered.

Command line: ``neural-collage data emoji-animals OUT_DIR [--cache DIR] [--size N]``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

#: Head classes in training-label order (the class index is the position here).
CLASSES: tuple[str, ...] = (
    "dog", "cat", "tiger", "lion", "fox", "wolf", "bear", "polar_bear", "panda", "koala", "monkey", "cow",
    "pig", "mouse", "hamster", "rabbit", "horse", "unicorn", "frog", "raccoon", "dragon",
)
#: A class is dropped when fewer training styles than this draw its head.
MIN_TRAIN_STYLES = 3
#: Fraction of the frame that the longer side of the drawing fills.
DEFAULT_FILL = 0.875
#: Alpha (0-255) above which a pixel counts as part of the drawing when finding its bounding box.
ALPHA_THRESHOLD = 16
DEFAULT_CACHE = Path("~/.cache/neural-collage/npm")
TRAIN_SPLIT = "train"
TEST_SPLIT = "test_openmoji"
#: Styles only the honest evaluation's judge learns from (never the GAN): see ``collage_core.training.honest``.
JUDGE_SPLIT = "judge"
SPLITS = (TRAIN_SPLIT, TEST_SPLIT, JUDGE_SPLIT)
RASTERISER_PIP = "resvg-py"
NPM_TIMEOUT_S = 600


class EmojiDataError(RuntimeError):
    """Data preparation cannot go on (npm missing, registry unreachable, bad package...); the message says why."""


@dataclass(frozen=True)
class EmojiSet:
    """One art style: a pinned npm package and the hand-checked head icons of each class in it.

    ``icons`` maps a class to its icon names, the style's own head first, then variants of it (the cat-face
    expressions, the three wise monkeys); a single name may be given as a string. Classes missing from ``icons``
    have no head in this style. ``kind`` says how the package stores its art:

    * ``"iconify"``: an IconifyJSON file (``member``, default ``icons.json``); icon names are Iconify names;
    * ``"svg-files"`` / ``"raster-files"``: one SVG / one raster image (PNG, WebP) per icon, at ``member`` with
      ``{icon}`` replaced by the icon name (a Unicode hex code);
    * ``"openmoji"``: ``color/svg/<HEX>.svg`` files; icon names are Unicode hex codes.

    ``author``, ``art_url`` and ``note`` are for the attribution of packages that carry no ``info.json``.
    """

    style: str
    package: str
    version: str
    license: str
    integrity: str | None
    kind: str
    split: str
    icons: Mapping[str, str | tuple[str, ...]] = field(repr=False)
    member: str | None = None
    author: str | None = None
    art_url: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        norm = {c: (v,) if isinstance(v, str) else tuple(v) for c, v in self.icons.items()}
        for c, names in norm.items():
            if not names:
                raise ValueError(f"{self.style}: class {c!r} lists no icon")
        object.__setattr__(self, "icons", norm)

    def icon_names(self, cls: str) -> tuple[str, ...]:
        """The icons of ``cls`` in this style, the head first (empty if the style does not draw it)."""
        return self.icons.get(cls, ())  # type: ignore[return-value]

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def tarball_name(self) -> str:
        """File name that ``npm pack`` gives this package (``@scope/name`` -> ``scope-name-VERSION.tgz``)."""
        return f"{self.package.lstrip('@').replace('/', '-')}-{self.version}.tgz"


# ----------------------------------------------------------------------------------------- icon tables
# Unicode-named sets (Noto, Twemoji, Emoji One, Fluent) name the heads after the Unicode emoji: the "*-face"
# emoji are heads, while plain "dog", "cat", "tiger", "cow", "pig", "mouse", "rabbit", "horse", "monkey",
# "dragon" are full bodies. Fox, wolf, bear, polar bear, panda, koala, lion, hamster, unicorn, frog and
# raccoon have only one emoji each, which is a head in most sets.
_UNICODE_HEADS: dict[str, str] = {
    "dog": "dog-face", "cat": "cat-face", "tiger": "tiger-face", "lion": "lion", "fox": "fox", "wolf": "wolf",
    "bear": "bear", "polar_bear": "polar-bear", "panda": "panda", "koala": "koala", "monkey": "monkey-face",
    "cow": "cow-face", "pig": "pig-face", "mouse": "mouse-face", "hamster": "hamster", "rabbit": "rabbit-face",
    "horse": "horse-face", "unicorn": "unicorn", "frog": "frog", "raccoon": "raccoon", "dragon": "dragon-face",
}


#: The nine cat-face expression emoji (U+1F638..1F640) after Unicode's names, as current Iconify sets spell them;
#: every set draws them as the same kind of cat head with another face, so they are variants of the cat class.
CAT_EXPRESSIONS = ("grinning-cat", "grinning-cat-with-smiling-eyes", "smiling-cat-with-heart-eyes",
                   "cat-with-wry-smile", "kissing-cat", "cat-with-tears-of-joy", "crying-cat", "pouting-cat",
                   "weary-cat")
#: The same nine as older Iconify sets (Emoji One, Streamline, Noto 2017) spell them.
CAT_FACE_EXPRESSIONS = ("grinning-cat-face", "grinning-cat-face-with-smiling-eyes", "smiling-cat-face-with-heart-eyes",
                        "cat-face-with-wry-smile", "kissing-cat-face", "cat-face-with-tears-of-joy", "crying-cat-face",
                        "pouting-cat-face", "weary-cat-face")
#: The three wise monkeys: monkey heads with hands over the eyes, ears or mouth.
WISE_MONKEYS = ("see-no-evil-monkey", "hear-no-evil-monkey", "speak-no-evil-monkey")


def _without(table: Mapping[str, str | tuple[str, ...]], *classes: str) -> dict[str, str | tuple[str, ...]]:
    return {c: icon for c, icon in table.items() if c not in classes}


def _with_variants(table: Mapping[str, str], cats: tuple[str, ...] = CAT_EXPRESSIONS,
                   monkeys: tuple[str, ...] = WISE_MONKEYS) -> dict[str, str | tuple[str, ...]]:
    """``table`` with the cat expressions and the wise monkeys added after the cat and monkey heads."""
    out: dict[str, str | tuple[str, ...]] = dict(table)
    if "cat" in out:
        out["cat"] = (table["cat"], *cats)
    if "monkey" in out:
        out["monkey"] = (table["monkey"], *monkeys)
    return out


#: (style, class) -> why that style's icon is not used although the set has the emoji.
EXCLUDED_ICONS: dict[tuple[str, str], str] = {
    ("noto", "raccoon"): "Noto's raccoon is a full body, not a head",
    ("noto-v1", "koala"): "Noto v1's koala is a full body clinging to a tree trunk, not a head",
    ("emojione", "koala"): "Emoji One's koala is a full sitting body, not a head",
    ("streamline-emojis", "wolf"): "Streamline's wolf-face is a side view of head and chest, not a front head",
    ("openmoji", "koala"): "OpenMoji's koala is a full sitting body, not a head",
    ("openmoji", "raccoon"): "OpenMoji's raccoon is a full body, not a head",
    ("openmoji", "polar_bear"): "OpenMoji's polar bear is a full body, not a head",
}

#: Variants left out although the set has them.
EXCLUDED_VARIANTS: dict[tuple[str, str], str] = {
    ("streamline-emojis", "pouting-cat-face"): "a side view, not a front head",
    ("fxemoji", "foxpouting"): "a side view, not a front head",
    ("fxemoji", "cat*"): "fxemoji draws the cat-face expression code points as the Firefox fox (fox* icons): they "
                         "are used as fox heads, not as cats",
}

_ICONIFY_OLD_NAMES = {**_UNICODE_HEADS, "lion": "lion-face", "fox": "fox-face", "wolf": "wolf-face",
                      "bear": "bear-face", "panda": "panda-face", "hamster": "hamster-face",
                      "unicorn": "unicorn-face", "frog": "frog-face"}

_MICROSOFT = ("Microsoft Corporation (Fluent Emoji, https://github.com/microsoft/fluentui-emoji, MIT: "
              "Copyright (c) Microsoft Corporation)")
_TWITTER = "Twitter, Inc and other contributors (Twemoji, https://github.com/twitter/twemoji)"

TRAIN_SETS: tuple[EmojiSet, ...] = (
    EmojiSet("noto", "@iconify-json/noto", "1.2.9", "Apache-2.0",
             "sha512-DQiuXENbun41ch+XPSV55H9FaWKpHTyz46YIKtSaKYD4fIDDzL1tR6H4np/T38jfrTAeI3rcKF0mqHYeZVAuaw==",
             "iconify", TRAIN_SPLIT, _with_variants(_without(_UNICODE_HEADS, "raccoon"))),
    EmojiSet("noto-v1", "@iconify-json/noto-v1", "1.2.5", "Apache-2.0",
             "sha512-/DsVMius69Q0fRS53z7QK1TROSuar606jiIx+laXtdsYGMXpf6LtHBx6CGfoo3UHHb/XpBsw+1L1x3eyPqMuVA==",
             "iconify", TRAIN_SPLIT, _with_variants(_without(_UNICODE_HEADS, "polar_bear", "koala", "raccoon"))),
    EmojiSet("twemoji", "@iconify-json/twemoji", "1.2.5", "CC-BY-4.0",
             "sha512-uKpuIEV0v6K5BW3Mjdyl+XKFVAbbcPxAgifKvEMtZoUZB5+YiY5zaMm2uNNCxyXzAWU9yNLlj41WU6/mvgALsw==",
             "iconify", TRAIN_SPLIT, _with_variants(_UNICODE_HEADS)),
    EmojiSet("emojione", "@iconify-json/emojione", "1.2.3", "CC-BY-4.0",
             "sha512-T9+T3HIbJNLKKsmxYKlaYhvnHYkz/HNYTV7SHCXVZPfeUi4FqskY70YeN8yYAZT8cCv7w5vJxS4Q1m8zb9CMMg==",
             "iconify", TRAIN_SPLIT,
             _with_variants({**_without(_UNICODE_HEADS, "polar_bear", "koala", "raccoon"),
                             "lion": "lion-face", "bear": "bear-face", "panda": "panda-face",
                             "hamster": "hamster-face", "unicorn": "unicorn-face", "frog": "frog-face"},
                            cats=CAT_FACE_EXPRESSIONS)),
    EmojiSet("fluent-emoji", "@iconify-json/fluent-emoji", "1.2.7", "MIT",
             "sha512-D8G6bKAyIsyxP1rzZtIWr/gg/fO4Rg1+DyCWlfqKK4h8W+4Em/Y0P6QYgJUQTlUcagzJvSyg+9OBv4hz4Hc/QA==",
             "iconify", TRAIN_SPLIT, _with_variants(_UNICODE_HEADS)),
    EmojiSet("fluent-emoji-flat", "@iconify-json/fluent-emoji-flat", "1.2.6", "MIT",
             "sha512-RY47RgPb47fYUiyrA64sIOL0+UU02s29sXpNBbIQRBUlPlfNFTKUmZDERGuxDs/7yNGWqQYvuaSYM1M4fRXlUw==",
             "iconify", TRAIN_SPLIT, _with_variants(_UNICODE_HEADS)),
    # Firefox OS names: "<animal>" is the head and "<animal>side" the body; no lion, polar bear, unicorn or
    # raccoon; the hamster is spelt "hampster". Its fox* icons (the cat-face expression code points) are drawn as
    # the Firefox fox: they are the fox class here (foxpouting is a side view and stays out).
    EmojiSet("fxemoji", "@iconify-json/fxemoji", "1.2.2", "Apache-2.0",
             "sha512-UAasRaxzFUKfIGSmLwnoarsssA4LX0VLLuEmplIqM6ZNQqIQRtav8tZ4H1neTlBreXuMQyAifr5jP4kn78DpiQ==",
             "iconify", TRAIN_SPLIT,
             {"dog": "dog", "cat": "cat", "tiger": "tiger", "wolf": "wolfface", "bear": "bear",
              "fox": ("foxsmiling", "foxgrin", "foxheart", "foxwry", "foxkissing", "foxtearofjoy", "foxcrying",
                      "foxweary"),
              "panda": "pandaface", "koala": "koala",
              "monkey": ("monkeyface", "monkeysee", "monkeyhear", "monkeyspeak"),
              "cow": "cowface", "pig": "pig", "mouse": "mouse", "hamster": "hampster", "rabbit": "bunny",
              "horse": "horseface", "frog": "frog", "dragon": "dragonhead"}),
    # Streamline has no polar bear, raccoon or dragon; its wolf and "fox-face-1" are side views of head and
    # chest, so the front-facing "fox-face-2" is used and the wolf is left out (so is its side-view pouting cat).
    EmojiSet("streamline-emojis", "@iconify-json/streamline-emojis", "1.2.4", "CC-BY-4.0",
             "sha512-iNr9T9XuZVTyQPJO8ZlLxBzPkpi7qMl+z1l0C31vpEMqhPMelth3n7CeWQYtixdetDPdI81yeG4ROqjWpYJE6A==",
             "iconify", TRAIN_SPLIT,
             _with_variants({"dog": "dog-face", "cat": "cat-face", "tiger": "tiger-face", "lion": "lion-face",
                             "fox": "fox-face-2", "bear": "bear-face", "panda": "panda-face", "koala": "koala",
                             "monkey": "monkey-face", "cow": "cow-face", "pig": "pig-face", "mouse": "mouse-face",
                             "hamster": "hamster-face", "rabbit": "rabbit-face", "horse": "horse-face",
                             "unicorn": "unicorn-face", "frog": "frog-face"},
                            cats=tuple(c for c in CAT_FACE_EXPRESSIONS if c != "pouting-cat-face"))),
    # The Noto generation between noto-v1 (the blobs) and today's noto, as shipped in Android 8-10, from the 2019
    # Iconify collection (the whole collection is one package; only json/noto.json is read). Its koala and
    # raccoon are heads; it has no polar bear. Old Iconify names.
    EmojiSet("noto-2017", "@iconify/json", "1.1.101", "Apache-2.0",
             "sha512-kscJC89QMm9kBACe9iADhVSNL4eML+WnU0X50+sP10YN5T6TQ53d5O31M9GY67RZY6zrKWIhlHc6FxbAyz+EJg==",
             "iconify", TRAIN_SPLIT,
             _with_variants({**_without(_ICONIFY_OLD_NAMES, "polar_bear"), "koala": "koala"},
                            cats=CAT_FACE_EXPRESSIONS),
             member="json/noto.json"),
    # Twemoji 2.x/11 (2016-2018): only the heads redrawn later (the others are near-identical to today's).
    EmojiSet("twemoji-2018", "twemoji", "11.0.0", "CC-BY-4.0",
             "sha512-/ubhVzJtevliDHYT0tXO41i7nOUPhE8GeRx5IEQhlKZiwc/Ee8i6TVoMz5hAwtR6AKkyKeDJ4m1OyCvfuR2W9w==",
             "svg-files", TRAIN_SPLIT, {"dog": "1f436", "cat": "1f431", "wolf": "1f43a", "unicorn": "1f984"},
             member="2/svg/{icon}.svg", author=_TWITTER, art_url="https://twemoji.twitter.com/"),
    # Twemoji 1.x (2014): its horse is the only front-facing horse head of any set; the rest duplicates 2.x.
    EmojiSet("twemoji-2014", "twemoji", "1.4.1", "CC-BY-4.0",
             "sha512-XtsPdDd4H9EOiZNUqHxRxYKQimCvLJqO3tHWktvQK0gAF5f+aa73XjZNrGU5zG0q5SqEljEkKYPjBMgw4ScQAQ==",
             "svg-files", TRAIN_SPLIT, {"horse": "1f434"},
             member="svg/{icon}.svg", author=_TWITTER, art_url="https://twemoji.twitter.com/"),
    # Microsoft's Fluent Emoji 3D renders (the same designs as fluent-emoji, ray-traced), 256 px WebP stills
    # re-encoded by LobeHub from microsoft/fluentui-emoji's MIT-licensed 3D PNGs.
    EmojiSet("fluent-emoji-3d", "@lobehub/fluent-emoji-3d", "1.1.0", "MIT",
             "sha512-Wlq2lVStTnr8BDpIJ0pEnTKO4LuDxxqTEhTvRtD1DLRF0me7ogeRQjKoehDHXuVJ2Qaecgl5wRBv60lUAG3h7g==",
             "raster-files", TRAIN_SPLIT,
             {"dog": "1f436", "cat": ("1f431", "1f63a", "1f638", "1f63b", "1f63c", "1f63d", "1f639", "1f63f", "1f63e",
                                      "1f640"),
              "tiger": "1f42f", "lion": "1f981", "fox": "1f98a", "wolf": "1f43a", "bear": "1f43b",
              "polar_bear": "1f43b-200d-2744-fe0f", "panda": "1f43c", "koala": "1f428",
              "monkey": ("1f435", "1f648", "1f649", "1f64a"), "cow": "1f42e", "pig": "1f437", "mouse": "1f42d",
              "hamster": "1f439", "rabbit": "1f430", "horse": "1f434", "unicorn": "1f984", "frog": "1f438",
              "raccoon": "1f99d", "dragon": "1f432"},
             member="assets/{icon}.webp", author=_MICROSOFT, art_url="https://github.com/microsoft/fluentui-emoji",
             note="WebP stills converted by LobeHub (https://github.com/lobehub/fluent-emoji) from Microsoft's 3D "
                  "PNGs of microsoft/fluentui-emoji (MIT). Copyright (c) Microsoft Corporation."),
)

#: Held-out test style (CC-BY-SA-4.0 art must stay out of the shipped weights). Icon names are hex codes.
TEST_SETS: tuple[EmojiSet, ...] = (
    EmojiSet("openmoji", "openmoji", "17.0.0", "CC-BY-SA-4.0",
             "sha512-EBnYrNGdcdw+OSXmENeNE1yBNRu6tOraTmoOyUbJkTmvT/+XETp8RZLSJFzD3lrPc5N9CzsyPnRTk0Vp4UaI9w==",
             "openmoji", TEST_SPLIT,
             {"dog": "1F436", "cat": "1F431", "tiger": "1F42F", "lion": "1F981", "fox": "1F98A", "wolf": "1F43A",
              "bear": "1F43B", "panda": "1F43C", "monkey": "1F435", "cow": "1F42E", "pig": "1F437",
              "mouse": "1F42D", "hamster": "1F439", "rabbit": "1F430", "horse": "1F434", "unicorn": "1F984",
              "frog": "1F438", "dragon": "1F432"}),
)

#: Styles the GAN never sees, kept for the honest evaluation's judge (with OpenMoji): a classifier that has never
#: seen a training picture of the GAN. Share-alike and line art are fine here: nothing of the judge ships.
JUDGE_SETS: tuple[EmojiSet, ...] = (
    EmojiSet("emojione-v1", "@iconify-json/emojione-v1", "1.2.3", "CC-BY-SA-4.0",
             "sha512-UjI2VQEXVtGlPBvQuxEizro7QCgBcJDOYwKUupquvvZ8UV4xOlvm45IU82JYWegiAWLerY79gFLMZ26U6Ms+ww==",
             "iconify", JUDGE_SPLIT,
             {**_without(_UNICODE_HEADS, "lion", "fox", "polar_bear", "unicorn", "raccoon"),
              "wolf": "wolf-face", "bear": "bear-face", "panda": "panda-face", "hamster": "hamster-face",
              "frog": "frog-face"}),
    EmojiSet("fluent-emoji-high-contrast", "@iconify-json/fluent-emoji-high-contrast", "1.2.6", "MIT",
             "sha512-esqhZPpkrF7sNX3NsLoh8KW64okEr/bzko7WNnFP+qTJGAqDPDYjp0925yxuivXy3HtVQB8xhIKu3+Nq1byX5w==",
             "iconify", JUDGE_SPLIT, dict(_UNICODE_HEADS)),
)

#: Packages deliberately left out of the default data, with the reason (licences checked by hand).
EXCLUDED_SETS: dict[str, str] = {
    "fluent-emoji-high-contrast": (
        "line art (black outlines on white, no fill colours): a different domain from every other style; "
        "with one image per class and style it made the naive generator produce outline-only samples "
        "(kept for the evaluation judge only)"),
    "@lobehub/fluent-emoji-anim-1..4": (
        "animated Fluent emoji: the packages name no source, and Microsoft has not openly licensed the "
        "animations (microsoft/fluentui-emoji issue #51); their first frames equal the 3D stills anyway"),
    "@svgmoji/blob": "ships no art on npm (the SVGs were removed in 3.0.0 and older versions are gone)",
    "emojione-v1": ("Emoji One 1.x art is CC-BY-SA-4.0 (share-alike is kept out of the shipped weights; kept for "
                    "the evaluation judge only)"),
    "emoji-datasource-*, @twemoji/svg, @lobehub/fluent-emoji-modern/-flat, emojione@2": (
        "the same art as sets already used"),
    "streamline-*-color, icon-park, other colour Iconify sets": "outline or duotone UI glyphs, not emoji heads",
}

#: Licence texts, cited in ATTRIBUTION.md where a package's metadata gives no URL.
_LICENSE_URLS: dict[str, str] = {
    "Apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "MIT": "https://opensource.org/license/mit",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
}


def default_sets() -> tuple[EmojiSet, ...]:
    """Training sets, then the held-out test style, then the judge-only styles, in column order."""
    return TRAIN_SETS + TEST_SETS + JUDGE_SETS


def kept_classes(sets: Sequence[EmojiSet], classes: Sequence[str] = CLASSES,
                 min_train_styles: int = MIN_TRAIN_STYLES) -> list[str]:
    """The classes (in order) that at least ``min_train_styles`` training styles draw."""
    return [c for c in classes if len({s.style for s in sets if s.split == TRAIN_SPLIT and c in s.icons})
            >= min_train_styles]


# ------------------------------------------------------------------------------------------ npm fetching
def _sri_sha512(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def _describe_npm_failure(spec: str, stdout: str, stderr: str) -> str:
    """A short message for a failed ``npm pack --json``: npm's error code and summary, not its stack trace."""
    try:
        error = json.loads(stdout).get("error", {})
    except (json.JSONDecodeError, AttributeError):
        error = {}
    code = str(error.get("code", ""))
    summary = str(error.get("summary", "")).strip()
    if not summary:  # no JSON: keep npm's own lines, minus the stack trace
        lines = [ln.removeprefix("npm error").strip() for ln in stderr.splitlines()]
        summary = "; ".join(ln for ln in lines if ln and not ln.startswith(("at ", "{", "}")))[:500]
    said = f"npm said: {code + ': ' if code else ''}{summary}"
    network = ("ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "ENETUNREACH", "EHOSTUNREACH")
    if any(word in code or word in summary or word in stderr for word in network):
        return (f"could not download {spec}: the npm registry is unreachable (check the network or npm's "
                f"registry/proxy settings). {said}")
    if "E404" in (code + stderr) or "ETARGET" in (code + stderr):
        return f"npm has no package {spec}. {said}"
    return f"`npm pack {spec}` failed. {said}"


def fetch_npm_package(emoji_set: EmojiSet, cache_dir: str | os.PathLike) -> Path:
    """Path of ``emoji_set``'s tarball in ``cache_dir``, downloaded with ``npm pack`` unless already cached.

    A cached tarball is reused only if its sha512 matches the pinned integrity; a fresh one must match too.
    """
    cache_dir = Path(cache_dir).expanduser()
    target = cache_dir / emoji_set.tarball_name
    if target.is_file() and (emoji_set.integrity is None or _sri_sha512(target) == emoji_set.integrity):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise EmojiDataError(
            f"npm is needed to download {emoji_set.spec} but was not found on PATH; install Node.js/npm "
            f"(e.g. `apt-get install npm`) or put the tarball {emoji_set.tarball_name} into {cache_dir}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".npm-pack-") as tmp:
        cmd = [npm, "pack", emoji_set.spec, "--json", "--ignore-scripts", "--loglevel=error"]
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=NPM_TIMEOUT_S,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise EmojiDataError(f"`npm pack {emoji_set.spec}` gave no answer in {NPM_TIMEOUT_S} s: the npm "
                                 f"registry seems unreachable") from None
        if proc.returncode != 0:
            raise EmojiDataError(_describe_npm_failure(emoji_set.spec, proc.stdout, proc.stderr))
        packed = sorted(Path(tmp).glob("*.tgz"))
        if len(packed) != 1:
            raise EmojiDataError(f"`npm pack {emoji_set.spec}` did not leave exactly one tarball in {tmp}")
        if emoji_set.integrity is not None and _sri_sha512(packed[0]) != emoji_set.integrity:
            raise EmojiDataError(f"{emoji_set.spec} from the registry does not match the pinned integrity hash "
                                 f"{emoji_set.integrity}; refusing to use it")
        os.replace(packed[0], target)
    return target


# -------------------------------------------------------------------------------------------- package reading
@dataclass
class PackageContents:
    """What is read from one tarball: metadata for attribution and the art of each wanted icon (SVG source text
    in ``svgs``, encoded raster files in ``rasters``)."""

    package_json: dict[str, Any]
    info: dict[str, Any]
    svgs: dict[str, str]
    icon_authors: dict[str, str] = field(default_factory=dict)
    attribution_note: str = ""
    rasters: dict[str, bytes] = field(default_factory=dict)


def _read_member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        member = tar.extractfile(f"package/{name}")
    except KeyError:
        member = None
    if member is None:
        raise EmojiDataError(f"{tar.name} has no file package/{name}")
    return member.read()


def _read_json(tar: tarfile.TarFile, name: str) -> Any:
    return json.loads(_read_member(tar, name).decode("utf-8"))


_TRANSFORM_KEYS = ("hFlip", "vFlip", "rotate")
_BOX_KEYS = ("left", "top", "width", "height")


def resolve_iconify_icon(icon_set: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Full icon data (body, box, transformations) of ``name`` in an IconifyJSON object, following aliases.

    Alias properties override the parent's box; flips combine by XOR and rotations add up, as in Iconify.
    """
    icons, aliases = icon_set.get("icons", {}), icon_set.get("aliases", {})
    chain: list[Mapping[str, Any]] = []
    current = name
    while current not in icons:
        if current not in aliases or len(chain) > 32:
            raise KeyError(f"icon {name!r} is not in icon set {icon_set.get('prefix', '?')!r}")
        chain.append(aliases[current])
        current = aliases[current]["parent"]
    data: dict[str, Any] = {"left": 0, "top": 0, "width": 16, "height": 16, "hFlip": False, "vFlip": False,
                            "rotate": 0}
    data.update({k: icon_set[k] for k in _BOX_KEYS if k in icon_set})
    data.update(icons[current])
    for alias in reversed(chain):  # innermost parent first, the requested alias last
        data.update({k: alias[k] for k in _BOX_KEYS if k in alias})
        data["hFlip"] = bool(data["hFlip"]) ^ bool(alias.get("hFlip", False))
        data["vFlip"] = bool(data["vFlip"]) ^ bool(alias.get("vFlip", False))
        data["rotate"] = (int(data["rotate"]) + int(alias.get("rotate", 0))) % 4
    return data


def iconify_svg(icon: Mapping[str, Any]) -> str:
    """A standalone SVG document for resolved Iconify icon data (port of Iconify's ``iconToSVG``)."""
    left, top, width, height = (float(icon[k]) for k in _BOX_KEYS)
    body = icon["body"]
    transforms: list[str] = []
    rotation = int(icon.get("rotate", 0))
    if icon.get("hFlip"):
        if icon.get("vFlip"):
            rotation += 2
        else:
            transforms += [f"translate({width + left:g} {-top:g})", "scale(-1 1)"]
            left = top = 0.0
    elif icon.get("vFlip"):
        transforms += [f"translate({-left:g} {height + top:g})", "scale(1 -1)"]
        left = top = 0.0
    rotation %= 4
    if rotation == 1:
        c = height / 2 + top
        transforms.insert(0, f"rotate(90 {c:g} {c:g})")
    elif rotation == 2:
        transforms.insert(0, f"rotate(180 {width / 2 + left:g} {height / 2 + top:g})")
    elif rotation == 3:
        c = width / 2 + left
        transforms.insert(0, f"rotate(-90 {c:g} {c:g})")
    if rotation % 2 == 1:
        left, top, width, height = top, left, height, width
    if transforms:
        body = f'<g transform="{" ".join(transforms)}">{body}</g>'
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{width:g}" height="{height:g}" viewBox="{left:g} {top:g} {width:g} {height:g}">{body}</svg>')


def read_package(tarball: str | os.PathLike, emoji_set: EmojiSet, classes: Iterable[str]) -> PackageContents:
    """Metadata and the art of every icon that ``emoji_set`` lists for ``classes``, read from its tarball."""
    wanted = sorted({icon for c in classes for icon in emoji_set.icon_names(c)})
    try:
        tar = tarfile.open(tarball, "r:gz")
    except (OSError, tarfile.TarError) as e:
        raise EmojiDataError(f"cannot read {tarball} ({e}); delete it to download it again") from None
    with tar:
        package_json = _read_json(tar, "package.json")
        if package_json.get("name") != emoji_set.package or package_json.get("version") != emoji_set.version:
            raise EmojiDataError(f"{tarball} holds {package_json.get('name')}@{package_json.get('version')}, "
                                 f"not {emoji_set.spec}")
        if emoji_set.kind == "iconify":
            icon_set = _read_json(tar, emoji_set.member or "icons.json")
            try:
                info = _read_json(tar, "info.json")
            except EmojiDataError:  # whole-collection packages keep the info inside the icon set
                info = dict(icon_set.get("info") or {})
            svgs = {}
            for icon in wanted:
                try:
                    svgs[icon] = iconify_svg(resolve_iconify_icon(icon_set, icon))
                except KeyError as e:
                    raise EmojiDataError(f"{emoji_set.spec}: {e.args[0]}") from None
            return PackageContents(package_json, info, svgs, attribution_note=emoji_set.note)
        if emoji_set.kind in ("svg-files", "raster-files"):
            if not emoji_set.member or "{icon}" not in emoji_set.member:
                raise ValueError(f"{emoji_set.style}: kind {emoji_set.kind} needs a member pattern with {{icon}}")
            files = {icon: _read_member(tar, emoji_set.member.format(icon=icon)) for icon in wanted}
            info = {"name": emoji_set.style, "author": {"name": emoji_set.author or "unknown",
                                                         **({"url": emoji_set.art_url} if emoji_set.art_url else {})},
                    "license": {"spdx": emoji_set.license}}
            if emoji_set.kind == "svg-files":
                return PackageContents(package_json, info, {k: v.decode("utf-8") for k, v in files.items()},
                                       attribution_note=emoji_set.note)
            return PackageContents(package_json, info, {}, attribution_note=emoji_set.note, rasters=files)
        if emoji_set.kind == "openmoji":
            meta = {e["hexcode"]: e for e in _read_json(tar, "data/openmoji.json")}
            svgs = {hexcode: _read_member(tar, f"color/svg/{hexcode}.svg").decode("utf-8") for hexcode in wanted}
            authors = {hexcode: str(meta.get(hexcode, {}).get("openmoji_author", "")) for hexcode in svgs}
            homepage = package_json.get("homepage", "https://openmoji.org/")
            info = {"name": "OpenMoji", "author": {"name": "OpenMoji contributors", "url": homepage},
                    "license": {"spdx": package_json.get("license")}}
            note = ("All emojis designed by OpenMoji (https://openmoji.org/) – the open-source emoji and icon "
                    "project. License: CC BY-SA 4.0")
            return PackageContents(package_json, info, svgs, authors, note)
    raise ValueError(f"unknown emoji set kind {emoji_set.kind!r}")


# --------------------------------------------------------------------------------------------- rasterising
def _import_resvg() -> Any:
    try:
        import resvg_py
    except ImportError:
        raise EmojiDataError(f"rasterising the emoji SVGs needs the `{RASTERISER_PIP}` package: "
                             f"pip install {RASTERISER_PIP}") from None
    return resvg_py


def rasteriser_version() -> dict[str, str]:
    """Versions of the SVG rasteriser (recorded in the manifest, since they decide the exact pixels)."""
    resvg_py = _import_resvg()
    return {"package": RASTERISER_PIP, "version": str(getattr(resvg_py, "__version__", "?")),
            "resvg": str(getattr(resvg_py, "__resvg_version__", "?"))}


def render_svg(svg: str, max_side: int) -> Image.Image:
    """Rasterise an SVG document to an RGBA image whose longer side is ``max_side`` pixels (aspect kept)."""
    resvg_py = _import_resvg()
    with Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg, skip_system_fonts=True)))) as probe:
        w, h = probe.size  # the SVG's own size, for its aspect ratio
    scale = max_side / max(w, h)
    width, height = max(1, round(w * scale)), max(1, round(h * scale))
    png = resvg_py.svg_to_bytes(svg_string=svg, width=width, height=height, skip_system_fonts=True)
    with Image.open(io.BytesIO(bytes(png))) as im:
        return im.convert("RGBA")


def open_raster(data: bytes) -> Image.Image:
    """An encoded raster image (PNG, WebP, ...) as RGBA; the first frame of an animation."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.seek(0)
            return im.convert("RGBA")
    except (OSError, ValueError) as e:
        raise EmojiDataError(f"cannot decode a raster icon ({e}); Pillow may lack WebP support") from None


def composite_centered(image: Image.Image, size: int, fill: float = DEFAULT_FILL,
                       background: tuple[int, int, int] = (255, 255, 255),
                       alpha_threshold: int = ALPHA_THRESHOLD) -> Image.Image:
    """Crop ``image`` to its drawing, scale it so its longer side fills ``fill`` of a ``size`` square, centre
    it and flatten it onto ``background``. Returns an RGB image of ``size`` x ``size``.

    The drawing is the bounding box of the pixels whose alpha exceeds ``alpha_threshold`` (so faint
    anti-aliasing dust does not shift it). Raises ``ValueError`` for an image with no such pixel.
    """
    if not 0 < fill <= 1:
        raise ValueError(f"fill must be in (0, 1], got {fill}")
    rgba = image.convert("RGBA")
    bbox = rgba.getchannel("A").point(lambda a: 255 if a > alpha_threshold else 0).getbbox()
    if bbox is None:
        raise ValueError("the image has no visible pixel to centre")
    drawing = rgba.crop(bbox)
    scale = fill * size / max(drawing.size)
    w, h = max(1, round(drawing.width * scale)), max(1, round(drawing.height * scale))
    drawing = drawing.resize((w, h), Image.Resampling.LANCZOS)  # Pillow resamples RGBA premultiplied
    canvas = Image.new("RGBA", (size, size), (*background, 255))
    canvas.alpha_composite(drawing, dest=((size - w) // 2, (size - h) // 2))
    return canvas.convert("RGB")


def save_png(image: Image.Image, path: Path) -> None:
    """Write an RGB PNG with no metadata chunks (no time stamp), so equal pixels give equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path, format="PNG", optimize=False, compress_level=9)


# ------------------------------------------------------------------------------------- manifest / attribution
def _dump_json(data: Any, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8", newline="\n")


def write_manifest(out_dir: Path, records: Sequence[Mapping[str, Any]], classes: Sequence[str],
                   sets: Sequence[EmojiSet], size: int, fill: float, rasteriser: Mapping[str, str]) -> Path:
    """``out_dir/manifest.json``: dataset parameters, packages and one record per image (paths relative)."""
    manifest = {
        "dataset": "emoji-animals",
        "format_version": 2,
        "size": size,
        "fill": fill,
        "background": [255, 255, 255],
        "rasteriser": dict(rasteriser),
        "classes": list(classes),
        "splits": {split: [s.style for s in sets if s.split == split] for split in SPLITS},
        "packages": [{"style": s.style, "package": s.package, "version": s.version, "license": s.license,
                      "integrity": s.integrity, "split": s.split} for s in sets],
        "excluded_sets": dict(EXCLUDED_SETS),
        "excluded_icons": [{"style": st, "class": c, "reason": r} for (st, c), r in EXCLUDED_ICONS.items()],
        "excluded_variants": [{"style": st, "icon": i, "reason": r} for (st, i), r in EXCLUDED_VARIANTS.items()],
        "images": [dict(r) for r in records],
    }
    path = out_dir / "manifest.json"
    _dump_json(manifest, path)
    return path


def write_attribution(out_dir: Path, sets: Sequence[EmojiSet], contents: Mapping[str, PackageContents],
                      records: Sequence[Mapping[str, Any]]) -> Path:
    """``out_dir/ATTRIBUTION.md``: every package with version, licence, authors and the icons used from it."""
    lines = [
        "# Attribution: emoji animal heads",
        "",
        "The images in this folder are derived from the emoji sets below: each icon was rasterised from its SVG",
        "(or decoded from its raster file), cropped to its drawing, rescaled, centred and composited on a white",
        "background (changes made).",
        "Images in `test_openmoji/` are OpenMoji art under CC BY-SA 4.0; they are a held-out test set and are",
        "never used to train the shipped weights.",
        "",
    ]
    for s in sets:
        c = contents[s.style]
        author = c.info.get("author", {})
        info_license = c.info.get("license", {})
        used = [r for r in records if r["style"] == s.style]
        lines += [
            f"## {c.info.get('name', s.style)} (`{s.style}`)",
            "",
            f"- npm package: `{s.package}` version {s.version} ({s.integrity or 'no pinned integrity'})",
            f"- Licence: {s.license} ({info_license.get('url') or _LICENSE_URLS.get(s.license, '')})".rstrip(),
            f"- Authors / copyright holders: {author.get('name', 'unknown')}"
            + (f" ({author['url']})" if author.get("url") else ""),
        ]
        if c.info.get("version"):
            lines.append(f"- Upstream art version: {c.info['version']}")
        if c.attribution_note:
            lines.append(f"- {c.attribution_note}")
        lines.append(f"- Split: {s.split}; icons used:")
        for r in used:
            by = c.icon_authors.get(r["icon"])
            lines.append(f"  - {r['class']}: `{r['icon']}`" + (f" (designed by {by})" if by else ""))
        lines.append("")
    if EXCLUDED_SETS:
        lines += ["## Sets left out", ""]
        lines += [f"- `{style}`: {reason}" for style, reason in EXCLUDED_SETS.items()]
        lines.append("")
    path = out_dir / "ATTRIBUTION.md"
    path.write_text("\n".join(lines), encoding="utf-8", newline="\n")
    return path


def make_contact_sheet(out_dir: Path, records: Sequence[Mapping[str, Any]], classes: Sequence[str],
                       sets: Sequence[EmojiSet], cell: int = 96) -> Path:
    """``out_dir/contact_sheet.png``: one row per class, one column per style (held-out styles marked)."""
    font = ImageFont.load_default()
    label_w, header_h, pad = 84, 30, 2
    sheet = Image.new("RGB", (label_w + len(sets) * (cell + pad), header_h + len(classes) * (cell + pad)),
                      (200, 200, 200))
    draw = ImageDraw.Draw(sheet)
    by_key = {(r["class"], r["style"]): r for r in records if r.get("variant", 0) == 0}
    variants = {key: sum(1 for r in records if (r["class"], r["style"]) == key) - 1 for key in by_key}
    for j, s in enumerate(sets):
        x = label_w + j * (cell + pad)
        role = "held out" if s.split == TEST_SPLIT else "judge"
        title = s.style if s.split == TRAIN_SPLIT else f"{s.style}\n({role})"
        draw.multiline_text((x + 2, 2), title.replace("-emoji", "-\nemoji", 1) if "\n" not in title else title,
                            fill=(0, 0, 0), font=font, spacing=1)
    for i, cls in enumerate(classes):
        y = header_h + i * (cell + pad)
        draw.text((4, y + cell // 2 - 6), f"{i} {cls}", fill=(0, 0, 0), font=font)
        for j, s in enumerate(sets):
            x = label_w + j * (cell + pad)
            record = by_key.get((cls, s.style))
            if record is None:
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(160, 160, 160))
                draw.text((x + cell // 2 - 8, y + cell // 2 - 6), "n/a", fill=(90, 90, 90), font=font)
                continue
            with Image.open(out_dir / record["path"]) as im:
                sheet.paste(im.convert("RGB").resize((cell, cell), Image.Resampling.LANCZOS), (x, y))
            extra = variants[(cls, s.style)]
            if extra:  # variants (expressions, poses) of this head: counted, not shown
                draw.rectangle((x + cell - 26, y + cell - 13, x + cell - 1, y + cell - 1), fill=(40, 40, 40))
                draw.text((x + cell - 24, y + cell - 12), f"+{extra}", fill=(255, 255, 255), font=font)
    path = out_dir / "contact_sheet.png"
    save_png(sheet, path)
    return path


# ------------------------------------------------------------------------------------------------ pipeline
def build_dataset(out_dir: str | os.PathLike, sets: Sequence[EmojiSet], cache_dir: str | os.PathLike,
                  size: int = 128, progress: bool = True, classes: Sequence[str] = CLASSES,
                  fill: float = DEFAULT_FILL) -> Path:
    """Write the data set for ``sets`` into ``out_dir`` (see the module docstring); returns ``out_dir``.

    Tarballs already in ``cache_dir`` with the pinned integrity are used as they are; others are fetched
    with npm. The ``train/`` and ``test_openmoji/`` folders of ``out_dir`` are replaced.
    """
    from tqdm.auto import tqdm

    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    out_dir = Path(out_dir)
    kept = kept_classes(sets, classes)
    for cls in classes:
        if cls not in kept:
            log.warning("class %s dropped: fewer than %d training styles draw its head", cls, MIN_TRAIN_STYLES)
    rasteriser = rasteriser_version()  # fail early, before any download, if the rasteriser is missing

    contents: dict[str, PackageContents] = {}
    for s in sets:
        contents[s.style] = read_package(fetch_npm_package(s, cache_dir), s, kept)

    for split in SPLITS:
        shutil.rmtree(out_dir / split, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)

    jobs = [(cls, s, k, icon) for cls in kept for s in sets for k, icon in enumerate(s.icon_names(cls))]
    render_px = max(512, 4 * size)
    records: list[dict[str, Any]] = []
    for cls, s, variant, icon in tqdm(jobs, desc="rasterising emoji", unit="img", disable=not progress):
        art = contents[s.style]
        rgba = open_raster(art.rasters[icon]) if icon in art.rasters else render_svg(art.svgs[icon], render_px)
        try:
            image = composite_centered(rgba, size, fill)
        except ValueError:
            raise EmojiDataError(f"{s.spec}: icon {icon!r} ({cls}) rendered as an empty image") from None
        name = s.style if variant == 0 else f"{s.style}--{icon}"
        rel = Path(s.split) / cls / f"{name}.png"
        save_png(image, out_dir / rel)
        records.append({"path": rel.as_posix(), "class": cls, "class_index": kept.index(cls), "style": s.style,
                        "variant": variant, "package": s.package, "version": s.version, "icon": icon,
                        "license": s.license, "split": s.split})

    write_manifest(out_dir, records, kept, sets, size, fill, rasteriser)
    write_attribution(out_dir, sets, contents, records)
    make_contact_sheet(out_dir, records, kept, sets)
    return out_dir


def prepare_emoji_animals(out_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                          size: int = 128, progress: bool = True) -> Path:
    """Fetch the pinned emoji sets and write the emoji animal-head data set into ``out_dir``; returns it.

    ``cache_dir`` defaults to ``~/.cache/neural-collage/npm``; ``size`` is the square image side in pixels.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else DEFAULT_CACHE.expanduser()
    return build_dataset(out_dir, default_sets(), cache, size=size, progress=progress)


# ---------------------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the data-preparation command (shared with the ``neural-collage`` CLI)."""
    parser.add_argument("out_dir", type=Path, help="folder to write train/, test_openmoji/, manifest.json, ...")
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help=f"where npm tarballs are kept (default {DEFAULT_CACHE})")
    parser.add_argument("--size", type=int, default=128, metavar="N", help="image side in pixels (default 128)")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the command for parsed ``args``; returns the exit status."""
    try:
        out = prepare_emoji_animals(args.out_dir, cache_dir=args.cache, size=args.size,
                                    progress=not args.no_progress)
    except EmojiDataError as e:
        log.error("%s", e)
        return 1
    with open(out / "manifest.json", encoding="utf-8") as f:
        images = json.load(f)["images"]
    n_train = sum(r["split"] == TRAIN_SPLIT for r in images)
    print(f"wrote {n_train} training and {len(images) - n_train} held-out images to {out}")
    return 0

