// A structuredClone for JSON-shaped data that shares strings instead of copying them.
//
// Why: the official client's reducer deep-clones the WHOLE message list after
// every event (structuredClone_ in apply/default.ts), and V8's structuredClone
// serialises every string byte. With one multi-MB tool result in the
// conversation, a 36,000-event log spends minutes copying that one string.
// JS strings are immutable, so sharing them is unobservable: for plain
// objects and arrays this clone is indistinguishable from the native one (same
// keys and order, same values, shared sub-objects stay shared, cycles kept).
// Anything else (class instances, holes, functions, very deep nesting) falls
// back to the native structuredClone for the whole value, errors included.
//
// Set AGUI_HARNESS_NATIVE_CLONE=1 to keep the platform's own structuredClone.

const nativeStructuredClone = globalThis.structuredClone;

/** Thrown inside the fast path when a value is not plain JSON-shaped data. */
const NOT_PLAIN = Symbol("not-plain");

function cloneNode(value, seen) {
  if (typeof value !== "object" || value === null) {
    if (typeof value === "function" || typeof value === "symbol") throw NOT_PLAIN;
    return value; // string, number, boolean, bigint, undefined: immutable
  }
  const known = seen.get(value);
  if (known !== undefined) return known;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) throw NOT_PLAIN;
    const length = value.length;
    if (Object.keys(value).length !== length) throw NOT_PLAIN; // holes or extra keys
    const copy = new Array(length);
    seen.set(value, copy);
    for (let i = 0; i < length; i++) copy[i] = cloneNode(value[i], seen);
    return copy;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) throw NOT_PLAIN;
  const copy = {};
  seen.set(value, copy);
  for (const key of Object.keys(value)) copy[key] = cloneNode(value[key], seen);
  return copy;
}

export function fastStructuredClone(value, options) {
  if (options !== undefined) return nativeStructuredClone(value, options);
  try {
    return cloneNode(value, new Map());
  } catch (error) {
    if (error === NOT_PLAIN || error instanceof RangeError) {
      return nativeStructuredClone(value);
    }
    throw error;
  }
}

/** Installs the fast clone globally unless the environment asks for the native one. */
export function installFastClone(env = process.env) {
  if (env.AGUI_HARNESS_NATIVE_CLONE === "1") return false;
  globalThis.structuredClone = fastStructuredClone;
  return true;
}
