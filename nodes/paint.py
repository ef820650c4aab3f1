"""Paint Class Map: brush strokes (the editor's class-map painter, or JSON written by hand) and painted masks over an
sCBN class map.

In the editor the node shows a canvas over its ``background`` picture (``web/painter.js``): pick a class, paint, and
the strokes land in the ``strokes`` input as JSON, so the saved workflow re-runs headless to the same picture.
"""

from __future__ import annotations

import base64
import functools
import io

from collage_core.collage import ArgumentError, paint_class
from collage_core.strokes import Stroke, class_colors, paint_strokes, parse_strokes
from collage_engine import Estimate, Input, Node, NodeOutput, Output, String

from .base import CATEGORY, CLASS_MAP, IMAGE, MASK, InputError, blame, facts_of

#: the largest side of the background picture sent to the painter (bigger pictures are shrunk for the canvas)
PREVIEW_MAX = 512
#: the example in the strokes input's description
EXAMPLE = '[{"class": "cat", "size": 0.2, "softness": 0.3, "strength": 1.0, "erase": false, "points": [[0.4, 0.4], ' \
          '[0.6, 0.45]]}]'


#: how many strokes texts keep their parse: a run validates, estimates and runs each Paint Class Map on the same text
PARSES_KEPT = 4


@functools.lru_cache(maxsize=PARSES_KEPT)
def _parse_once(text: str) -> tuple[tuple[Stroke, ...], str | None]:
    """``(strokes, None)`` for a strokes JSON text, or ``((), why not)``; kept for the last few texts (strokes are
    frozen, so sharing them is safe)."""
    try:
        return tuple(parse_strokes(text)), None
    except ValueError as e:
        return (), str(e)


def strokes_of(text: str) -> tuple[Stroke, ...]:
    """The strokes of a JSON text, parsed once for validation, estimate and run; ``ArgumentError`` naming
    ``strokes`` when it holds none."""
    parsed, problem = _parse_once(text)
    if problem is not None:
        raise ArgumentError("strokes", problem)
    return parsed


def preview_data_url(image) -> str:
    """The first picture of an IMAGE batch as a ``data:image/png`` URL, shrunk to at most :data:`PREVIEW_MAX` px."""
    from PIL import Image

    from collage_core.images import image_to_uint8

    u8 = image_to_uint8(image[:1])[0]
    pic = Image.fromarray(u8 if u8.shape[-1] != 1 else u8[..., 0])
    if max(pic.size) > PREVIEW_MAX:
        pic.thumbnail((PREVIEW_MAX, PREVIEW_MAX))
    buf = io.BytesIO()
    pic.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def labels_payload(class_names) -> dict:
    """What the painter needs to offer classes: ``{"labels": [...], "colors": ["#rrggbb", ...]}``."""
    names = [str(n) for n in class_names]
    return {"labels": names, "colors": class_colors(len(names))}


def model_labels(model: str) -> list[str] | None:
    """The class names of a model input's value (an embedded name, a checkpoint file, a BigGAN name or folder) from
    its header, nothing loaded; None when unknown."""
    from collage_core import biggan_io

    from .base import ModelFacts

    if not isinstance(model, str) or not model:
        return None
    if biggan_io.is_biggan_name(model) or biggan_io.is_reference_folder(model):
        from collage_core.imagenet_labels import IMAGENET_LABELS

        return list(IMAGENET_LABELS)
    facts = ModelFacts.read(model)
    return list(facts.class_names) if facts is not None else None


#: the route the painter asks for a model's classes (``?model=NAME``), in serve and in ComfyUI (under /api too)
LABELS_ROUTE = "/neural-collage/labels"


def labels_handler(resolve):
    """The handler of :data:`LABELS_ROUTE` (``GET ?model=NAME``), for serve and for ComfyUI: the class names and
    painter colours of a model input's value, nothing loaded. ``resolve`` turns the value into what
    :func:`model_labels` reads, as the workflow's loader would (a ``ValueError`` it raises, e.g. a path refused,
    answers 404 with its text); 404 too when the model names nothing with class names."""
    from aiohttp import web

    async def labels(request):
        model = request.query.get("model", "")
        try:
            resolved = resolve(model)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=404)
        names = model_labels(resolved)
        if names is None:
            return web.json_response({"error": f"no class names found for model {model!r}"}, status=404)
        return web.json_response({"model": model, **labels_payload(names)})
    return labels


def register_comfyui_routes() -> bool:
    """Add :data:`LABELS_ROUTE` to a running ComfyUI's server (``PromptServer.instance.routes``); False outside
    ComfyUI. Model names resolve like Load Generator's input inside ComfyUI (embedded names, paths, names in the
    ``neural_collage`` model folder: :func:`.comfy_models.resolve_model`)."""
    try:
        import aiohttp  # noqa: F401 - the handler's
        from server import PromptServer  # ComfyUI's own module
    except ImportError:
        return False
    from .comfy_models import resolve_model

    instance = getattr(PromptServer, "instance", None)
    if instance is None or getattr(instance, "_neural_collage_routes", False):
        return False
    instance.routes.get(LABELS_ROUTE)(labels_handler(lambda model: resolve_model(model, "generator")))
    instance._neural_collage_routes = True
    return True


class PaintClassMap(Node):
    """Paint classes on a class map with brush strokes: the editor's painter draws them over the background picture
    (pick a class, brush size, soft edge, strength, eraser) and writes them into strokes; any number of classes.
    A painted mask (Load Mask) can be added under mask / mask_class."""

    description = ("Paint classes on a class map with brush strokes. In the editor the node shows a canvas over its "
                   "background picture: pick a class (each has a colour), set brush size, soft edge and strength "
                   "(or the eraser), paint, and the graph re-runs; the strokes are saved as JSON in 'strokes', so the "
                   "workflow re-runs headless to the same picture. Each stroke paints its class like Paint Class "
                   "(w = w (1 - s m) + s m onehot(class), later strokes win); an eraser stroke paints the incoming "
                   "map back. A mask (e.g. Load Mask of a painted file) is painted with mask_class before the "
                   "strokes.")
    display_name = "Paint Class Map"
    category = f"{CATEGORY}/class"
    output_node = True  # shows its background picture in the painter even when the result is cached
    inputs = [
        Input("class_map", CLASS_MAP, description="The map to paint on (from Class Map (sCBN) or Paint Class)."),
        String("strokes", "[]", multiline=True,
               description="The strokes as JSON, written by the painter: a list of {class, size (brush diameter, "
                           "fraction of the picture's width), softness (0..1), strength (0..1), erase (true/false), "
                           f"points ([x, y] in 0..1, origin top left)}}, painted in order. Example: {EXAMPLE}"),
        Input("background", IMAGE, optional=True,
              description="The picture the painter draws over (e.g. Generate's image of the unpainted map); only "
                          "shown in the editor."),
        Input("mask", MASK, optional=True,
              description="A painted mask (e.g. Load Mask of a file painted elsewhere), painted with mask_class "
                          "before the strokes; resized to the map."),
        String("mask_class", "cat", optional=True,
               description="The class painted under mask (a class name or id); unused without a mask."),
    ]
    outputs = [Output("class_map", CLASS_MAP, "The painted map (as many variants as the incoming one).")]
    error_inputs = {"class_name": "mask_class"}  # paint_class's parameter

    def validate(self, strokes=None, **_):
        if isinstance(strokes, str):
            try:
                strokes_of(strokes)
            except ValueError as e:
                return [("strokes", str(e))]
        return None

    def estimate(self, class_map=None, strokes=None, mask=None, mask_class=None, **_):
        facts = facts_of(class_map)
        if facts is None:
            return None
        if isinstance(strokes, str):
            try:
                parsed = strokes_of(strokes)
            except ValueError:
                parsed = ()  # reported by validate
            for i, s in enumerate(parsed):
                if not s.erase:
                    try:
                        facts.check_class(s.class_name, "strokes")
                    except InputError as e:
                        raise InputError("strokes", f"stroke {i}: {e.message}") from None
        if mask is not None and isinstance(mask_class, str):
            facts.check_class(mask_class, "mask_class")
        return (Estimate(tuple(class_map.shape), 4, class_map.device, info=facts),)

    def run(self, ctx, class_map, strokes, background=None, mask=None, mask_class="cat"):
        with blame("strokes"):
            parsed = strokes_of(strokes) if isinstance(strokes, str) else parse_strokes(strokes)
        if mask is not None:
            with blame("mask", "class_name"):  # class_name: reported on mask_class (error_inputs)
                class_map = paint_class(class_map, mask, mask_class, [1.0])
        with blame("strokes"):  # interruptible between strokes; progress every 32 of them
            out = paint_strokes(class_map, parsed, progress=lambda i, n: ctx.progress(i, n) if i % 32 == 0
                                else ctx.check_cancelled())
        ui = {"paint_labels": [labels_payload(class_map.class_names)]}
        if background is not None:
            if background.dim() != 4 or background.shape[0] < 1:
                raise InputError("background", f"expected an IMAGE [B, H, W, C], got shape "
                                               f"{tuple(background.shape)}")
            ui["paint_background"] = [preview_data_url(background)]
        return NodeOutput(out, ui=ui)
