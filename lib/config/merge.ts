/**
 * Deep merge of an environment overlay over the base configuration.
 *
 * Mappings merge key by key; lists replace, except `instances`, which merge by `id` so an overlay
 * can change one instance's port without repeating the others.
 *
 * @module
 */

/** A plain YAML mapping as parsed. */
export type Plain = Record<string, unknown>;

function isPlain(value: unknown): value is Plain {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Returns a new object: `overlay` merged over `base`. Neither argument is modified. */
export function deepMerge(base: Plain, overlay: Plain): Plain {
  const out: Plain = { ...base };
  for (const [key, value] of Object.entries(overlay)) {
    const current = out[key];
    if (key === "instances" && Array.isArray(current) && Array.isArray(value)) {
      out[key] = mergeInstances(current, value);
    } else if (isPlain(current) && isPlain(value)) {
      out[key] = deepMerge(current, value);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function mergeInstances(base: unknown[], overlay: unknown[]): unknown[] {
  const out = [...base];
  for (const item of overlay) {
    const id = isPlain(item) ? item.id : undefined;
    const at = out.findIndex((b) => isPlain(b) && id !== undefined && b.id === id);
    if (at >= 0 && isPlain(item)) out[at] = deepMerge(out[at] as Plain, item);
    else out.push(item);
  }
  return out;
}
