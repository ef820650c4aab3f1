"""Progress reporting for command-line use: engine events rendered as tqdm bars."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm.auto import tqdm

__all__ = ["TqdmReporter"]


class TqdmReporter:
    """An engine listener drawing one bar for the run (nodes executed) and one for the running node's steps.

    ``engine.add_listener(TqdmReporter())``; ``titles`` maps node ids to names shown in the bars.
    """

    def __init__(self, titles: dict[str, str] | None = None, file: TextIO | None = None,
                 leave: bool = False) -> None:
        self.titles = titles or {}
        self.file = file if file is not None else sys.stderr
        self.leave = leave
        self.run_bar: Any = None
        self.node_bar: Any = None
        self.node: str | None = None

    def _label(self, node: str | None) -> str:
        return f"#{node} {self.titles.get(node, '')}".strip() if node else ""

    def _close_node(self) -> None:
        if self.node_bar is not None:
            self.node_bar.close()
            self.node_bar = None

    def close(self) -> None:
        self._close_node()
        if self.run_bar is not None:
            self.run_bar.close()
            self.run_bar = None

    def __call__(self, event: str, data: dict) -> None:
        if event == "execution_start":
            self.close()
            self.run_bar = tqdm(total=len(data.get("nodes", [])), desc="workflow", unit="node", file=self.file,
                                leave=self.leave, dynamic_ncols=True)
        elif event == "executing":
            self._close_node()
            if self.node is not None and self.run_bar is not None:
                self.run_bar.update(1)
            self.node = data.get("node")
            if self.run_bar is not None:
                self.run_bar.set_postfix_str(self._label(self.node))
        elif event == "progress":
            total = data.get("max")
            if not total or total <= 1:  # a one-step node: the workflow bar says enough
                return
            if self.node_bar is None or self.node_bar.total != total:
                self._close_node()
                self.node_bar = tqdm(total=total, desc=self._label(data.get("node")), file=self.file,
                                     leave=False, dynamic_ncols=True)
            self.node_bar.n = data.get("value", 0)
            self.node_bar.refresh()
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            if event == "execution_error":
                tqdm.write(f"node {self._label(data.get('node_id'))} ({data.get('node_type')}) failed: "
                           f"{data.get('exception_type')}: {data.get('exception_message')}", file=self.file)
            elif event == "execution_interrupted":
                tqdm.write("interrupted", file=self.file)
            elif self.run_bar is not None:
                self.run_bar.n = self.run_bar.total
                self.run_bar.refresh()
            self.node = None
            self.close()
