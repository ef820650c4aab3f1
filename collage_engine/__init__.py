"""collage_engine: a small, generic DAG engine for ComfyUI-style node graphs (it knows nothing about GANs).

Declare nodes (:class:`Node`, :class:`Input`, :class:`Output`), collect them in a :class:`NodeRegistry`, build or
load workflows (:class:`Graph`, :func:`load_workflow`; ComfyUI's API format is native, its UI format is
converted), and run them with an :class:`Engine` (validation first, ancestors-only execution, recursive cache
keys, LRU cache with host/device byte budgets, progress events, interruption)::

    from collage_engine import Engine, Graph, Input, Int, Node, NodeRegistry, Output

    registry = NodeRegistry()

    @registry.register
    class Add(Node):
        category = "math"
        inputs = [Int("a", 0), Int("b", 0)]
        outputs = [Output("sum", "INT")]
        def run(self, ctx, a, b):
            return (a + b,)

    @registry.register
    class Show(Node):
        output_node = True
        inputs = [Input("value", "INT")]
        def run(self, ctx, value):
            return NodeOutput(ui={"text": [str(value)]})

    g = Graph(registry)
    s = g.node("Add", a=1, b=2)
    g.node("Show", value=s)
    result = Engine(registry).run(g)       # result.ui == {"2": {"text": ["3"]}}
"""

from .cache import CacheEntry, ResultCache, measure_bytes
from .context import Context, Interrupted, seeded_generator
from .declare import (
                      CONTROL_VALUES,
                      MISSING,
                      WIDGET_TYPES,
                      Boolean,
                      Combo,
                      DeclarationError,
                      Float,
                      Input,
                      Int,
                      Node,
                      NodeOutput,
                      Output,
                      String,
                      types_match,
)
from .errors import NodeInputError
from .executor import (
                      VOLATILE,
                      Engine,
                      ExecutionFailed,
                      RunResult,
                      file_fingerprint,
                      node_fingerprint,
                      normalise_result,
                      public_ui,
)
from .graph import Graph, NodeRef, OutputRef
from .memory import Estimate, MemoryBudgetError, default_max_memory, format_bytes
from .paths import PathPolicy, PathRefusedError
from .progress import TqdmReporter
from .registry import NodeRegistry
from .validate import (
                      PlannedNode,
                      Validation,
                      ValidationError,
                      check_constant,
                      format_errors,
                      validate,
                      validation_messages,
)
from .workflow import WorkflowError, api_to_ui, is_ui_format, load_workflow, save_workflow, ui_to_api

__all__ = [
    "api_to_ui", "Boolean", "CacheEntry", "Combo", "Context", "CONTROL_VALUES", "DeclarationError",
    "default_max_memory", "Engine", "Estimate", "ExecutionFailed", "file_fingerprint", "Float", "format_bytes",
    "format_errors", "Graph", "Input", "Int", "Interrupted", "is_ui_format", "load_workflow", "measure_bytes",
    "MemoryBudgetError", "MISSING", "Node", "NodeInputError", "NodeOutput", "NodeRef", "NodeRegistry", "Output",
    "OutputRef", "PathPolicy", "PathRefusedError", "PlannedNode",
    "ResultCache", "RunResult", "save_workflow", "seeded_generator", "String",
    "TqdmReporter", "types_match", "ui_to_api", "validate", "Validation", "ValidationError", "WIDGET_TYPES",
    "WorkflowError",
    # for embedders (the ComfyUI adapter): the engine's own rules, to apply them outside an Engine
    "VOLATILE", "check_constant", "node_fingerprint", "normalise_result", "public_ui", "validation_messages",
]
