"""Classes: choose one, or build an sCBN class map (a base class with classes painted over masked regions)."""

from __future__ import annotations

from collage_core import collage
from collage_core.collage import (
    class_index,
    layer_range_sweep,
    new_class_map,
    paint_class,
    parse_layer_ranges,
    select_class,
    sweep_layer_ranges,
    sweep_strengths,
)
from collage_core.grid_labels import join_labels, layer_range_labels, strength_labels
from collage_engine import Combo, Estimate, Float, Input, Int, Node, Output, String

from .base import CATEGORY, CLASS_MAP, CLASS_SPEC, GENERATOR, MASK, STRING, InputError, blame, facts_of

CAT = f"{CATEGORY}/class"
MAX_LAYER = 63  # BigGAN-deep 512 has 57 sCBN layers (SNGAN 256: 12)
LAYER_SWEEPS = list(collage.LAYER_SWEEPS)
_MASK_NOTE = ("A mask of another size than the model's resolution is resized to it (bilinear); a batch of B masks "
              "gives B variants.")


def _class_input(name: str, default: str, what: str) -> Input:
    return String(name, default, description=f"{what}: a class name from the model's labels (e.g. {default}) or a "
                                             f"class id (e.g. 0).")


def _painted(class_map, class_name, variants: int):
    """Estimate of a painted class map: the class name checked against the model's labels."""
    facts = facts_of(class_map)
    if facts is None:
        return None
    facts.check_class(class_name, "class_name")
    return (Estimate((class_map.shape[0] * variants, *class_map.shape[1:]), 4, class_map.device, info=facts),)


class ClassSelect(Node):
    """Choose a class of the model by name or id, for plain class-conditional generation."""

    display_name = "Class Select"
    category = CAT
    inputs = [Input("generator", GENERATOR, description="The model whose labels are looked up."),
              _class_input("class_name", "dog", "The class")]
    outputs = [Output("classes", CLASS_SPEC, "The class id (one variant).")]

    def estimate(self, generator=None, class_name=None):
        facts = facts_of(generator)
        if facts is None:
            return None
        facts.check_class(class_name, "class_name")
        return (Estimate((1,), 8, info=facts),)

    def run(self, ctx, generator, class_name):
        with blame("class_name"):
            return (select_class(generator, class_name),)


class ClassMap(Node):
    """Start an sCBN class map: the base class everywhere, applied to the sCBN layers layer_start..layer_end (the
    others use the base class). Paint other classes over it with Paint Class (chain as many as needed)."""

    display_name = "Class Map (sCBN)"
    category = CAT
    inputs = [
        Input("generator", GENERATOR, description="The model (gives resolution, labels, device and layer count)."),
        _class_input("base_class", "dog", "The class everywhere outside painted regions"),
        Int("layer_start", 0, min=0, max=MAX_LAYER,
            description="First sCBN layer the map applies to (0 = the first block's first BN; two layers per block)."),
        Int("layer_end", -1, min=-1, max=MAX_LAYER,
            description="Last sCBN layer the map applies to, inclusive (-1 = the last layer)."),
        Input("base", CLASS_SPEC, optional=True,
              description="If connected (e.g. the class Project Image found), it replaces base_class."),
    ]
    outputs = [Output("class_map", CLASS_MAP, "A one-class map at the model's resolution, on its device.")]

    def estimate(self, generator=None, base_class=None, layer_start=0, layer_end=-1, base=None):
        facts = facts_of(generator)
        if facts is None:
            return None
        if base is None:
            facts.check_class(base_class, "base_class")
        last = facts.n_map_layers - 1
        for name, value in (("layer_start", layer_start), ("layer_end", layer_end)):
            if isinstance(value, int) and value > last:
                raise InputError(name, f"{value} is past the model's last sCBN layer ({last}; it has "
                                       f"{facts.n_map_layers}: two per block)")
        r = facts.resolution
        return (Estimate((1, len(facts.class_names), r, r), 4, generator.device, info=facts),)

    def run(self, ctx, generator, base_class, layer_start, layer_end, base=None):
        if base is not None:
            if base.variants != 1:
                raise InputError("base", f"expected one class, got {base.variants}")
            base_class = base.ids[0]
        with blame("base_class", "layer_start", "layer_end"):
            return (new_class_map(generator, base_class, layer_start, layer_end),)


class PaintClass(Node):
    """Paint a class over a class map under a mask with a strength (chainable)."""

    description = ("Paint a class over a class map under a mask with a strength: w = w (1 - s m) + s m onehot(class), "
                   "so weights stay a mixture and later paints win where masks overlap. Chain it any number of "
                   "times. " + _MASK_NOTE)
    display_name = "Paint Class"
    category = CAT
    inputs = [
        Input("class_map", CLASS_MAP, description="The map to paint on (from Class Map or another Paint Class)."),
        Input("mask", MASK, description="Where to paint, [B, H, W] or [H, W] in [0, 1]."),
        _class_input("class_name", "cat", "The class to paint"),
        Float("strength", 1.0, min=0.0, max=1.0, step=0.01,
              description="How much of the class replaces what is below (0 = nothing, 1 = all, under mask = 1)."),
    ]
    outputs = [Output("class_map", CLASS_MAP, "The painted map.")]
    error_inputs = {"strengths": "strength"}  # paint_class's parameter

    def estimate(self, class_map=None, mask=None, class_name=None, **_):
        return _painted(class_map, class_name, 1)

    def run(self, ctx, class_map, mask, class_name, strength):
        with blame("mask", "class_name", "strengths"):
            return (paint_class(class_map, mask, class_name, [strength]),)


class PaintClassSweep(Node):
    """Paint a class once per strength of a sweep: a batch of maps for spatial class interpolation."""

    description = ("Paint a class like Paint Class, once per strength from start to end in steps: a batch of maps "
                   "for spatial class interpolation (each map variant gives one column of a grid). " + _MASK_NOTE)
    display_name = "Paint Class Sweep"
    category = CAT
    inputs = [
        Input("class_map", CLASS_MAP, description="The map to paint on."),
        Input("mask", MASK, description="Where to paint, [B, H, W] or [H, W] in [0, 1]."),
        _class_input("class_name", "cat", "The class to paint"),
        Float("start", 0.0, min=0.0, max=1.0, step=0.01, description="Strength of the first variant."),
        Float("end", 1.0, min=0.0, max=1.0, step=0.01, description="Strength of the last variant."),
        Int("steps", 5, min=1, max=64, description="Number of strengths, evenly spaced, both ends included."),
    ]
    outputs = [Output("class_map", CLASS_MAP, "The map variants (input variants x steps, strength varying fastest)."),
               Output("labels", STRING, "One label per variant ('cat 0.25'), one per line: connect it to Image "
                                        "Grid's col_labels.")]

    def estimate(self, class_map=None, mask=None, class_name=None, steps=1, **_):
        est = _painted(class_map, class_name, steps if isinstance(steps, int) else 1)
        return None if est is None else (*est, None)

    def run(self, ctx, class_map, mask, class_name, start, end, steps):
        with blame("steps", "start", "end"):
            strengths = sweep_strengths(start, end, steps)
        with blame("mask", "class_name"):
            out = paint_class(class_map, mask, class_name, strengths)
            name = out.class_names[class_index(out.class_names, class_name)]
        labels = strength_labels(name, strengths) * (out.variants // len(strengths))
        return out, join_labels(labels)


class LayerRangeSweep(Node):
    """Repeat a class map once per sCBN layer range (the paper's per-layer ablation): 'per block' applies it to each
    block's two layers alone, 'from first layer' to the first 2, 4, ... layers, 'to last layer' to the last 2, 4, ...,
    'single layers' to each layer alone, 'custom' to the ranges written in custom."""

    display_name = "Layer Range Sweep"
    category = CAT
    inputs = [
        Input("class_map", CLASS_MAP, description="The collage to apply at different layers."),
        Combo("mode", LAYER_SWEEPS, default="per block", description="Which layer ranges to sweep."),
        String("custom", "0-1, 2-3, 0-end",
               description="For mode 'custom': inclusive ranges 'first-last' or single layers, comma-separated; 'end' "
                           "(or -1) is the last layer."),
    ]
    outputs = [Output("class_map", CLASS_MAP, "The map variants (input variants x ranges, range varying fastest)."),
               Output("labels", STRING, "One label per variant ('layers 0-1'), one per line: connect it to Image "
                                        "Grid's col_labels.")]

    def run(self, ctx, class_map, mode, custom):
        with blame("mode", "custom"):
            ranges = layer_range_sweep(mode, class_map.n_layers, custom)
        out = sweep_layer_ranges(class_map, ranges)
        return out, join_labels(layer_range_labels(out.layer_ranges))

    def validate(self, mode=None, custom=None, **_):
        if mode == "custom" and isinstance(custom, str):
            try:
                parse_layer_ranges(custom, MAX_LAYER + 1)
            except ValueError as e:
                return f"input 'custom': {e}"
        return None
