// neural-collage: what the pack's editor extensions share (plain JS, no build). Imported by classes.js and
// painter.js; registers nothing itself.

// The `model` value of the Load Generator a node is made from: walks up the node's inputs (breadth first).
export function modelOf(node) {
  const seen = new Set();
  const queue = [node];
  while (queue.length) {
    const n = queue.shift();
    if (!n || seen.has(n.id)) continue;
    seen.add(n.id);
    const model = n.widgets?.find((w) => w.name === "model");
    if (n.type === "LoadGenerator" && model && typeof model.value === "string") return model.value;
    for (let i = 0; i < (n.inputs?.length || 0); i++) queue.push(n.getInputNode?.(i));
  }
  return null;
}
