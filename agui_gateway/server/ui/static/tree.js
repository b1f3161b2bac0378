// A collapsible JSON tree. Children are built only when their node is opened, so a
// large state costs nothing until someone looks; open nodes stay open across updates.

const LEAF_PREVIEW = 80;

function preview(value) {
  if (Array.isArray(value)) return `[${value.length}]`;
  if (value !== null && typeof value === "object") return `{${Object.keys(value).length}}`;
  const text = JSON.stringify(value);
  return text.length > LEAF_PREVIEW ? `${text.slice(0, LEAF_PREVIEW)}…` : text;
}

function leaf(key, value) {
  const row = document.createElement("div");
  row.className = "leaf";
  const name = document.createElement("span");
  name.className = "key";
  name.textContent = key;
  const shown = document.createElement("span");
  shown.className = `value ${value === null ? "null" : typeof value}`;
  shown.textContent = JSON.stringify(value);
  row.append(name, shown);
  return row;
}

function node(key, value, path, expanded) {
  if (value === null || typeof value !== "object") return leaf(key, value);
  const details = document.createElement("details");
  details.dataset.path = path;
  const summary = document.createElement("summary");
  const name = document.createElement("span");
  name.className = "key";
  name.textContent = key;
  const size = document.createElement("span");
  size.className = "size";
  size.textContent = preview(value);
  summary.append(name, size);
  details.append(summary);
  const fill = () => {
    if (details.childElementCount > 1) return;
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    for (const [k, v] of entries) details.append(node(k, v, `${path}/${k}`, expanded));
  };
  details.addEventListener("toggle", () => {
    if (details.open) {
      expanded.add(path);
      fill();
    } else {
      expanded.delete(path);
    }
  });
  if (expanded.has(path)) {
    details.open = true;
    fill();
  }
  return details;
}

/** Replaces `container`'s content with the tree of `value`; `expanded` holds the open paths. */
export function renderJsonTree(container, value, expanded, label = "state") {
  container.replaceChildren(node(label, value, "", expanded));
}
