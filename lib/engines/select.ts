/**
 * Which databases of a server are backed up: include globs, then exclude globs, and never the
 * system databases, even when a pattern names them.
 *
 * @module
 */
import type { DatabaseInfo, Engine } from "./types.ts";

const cache = new Map<string, RegExp>();

/** A reversed range such as `[z-a]` is no class: the glob then treats `[` literally. */
function validClass(cls: string): boolean {
  try {
    new RegExp(cls, "u");
    return true;
  } catch {
    return false;
  }
}

/**
 * Compiles a glob to an anchored, case-sensitive regular expression: `*` any run of characters,
 * `?` one character, `[abc]` / `[a-z]` / `[!abc]` / `[^abc]` a class. Everything else is literal;
 * an unclosed `[` is a literal `[`.
 */
export function globToRegExp(glob: string): RegExp {
  const hit = cache.get(glob);
  if (hit) return hit;
  let re = "^";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") re += "[\\s\\S]*";
    else if (c === "?") re += "[\\s\\S]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end === -1) {
        re += "\\[";
        continue;
      }
      let body = glob.slice(i + 1, end);
      let negate = false;
      if (body[0] === "!" || body[0] === "^") {
        negate = true;
        body = body.slice(1);
      }
      // Escape everything a RegExp class treats specially except the range dash.
      const cls = `[${negate ? "^" : ""}${body.replace(/[\\\]\[^]/g, "\\$&")}]`;
      if (!validClass(cls)) {
        re += "\\[";
        continue;
      }
      re += cls;
      i = end;
    } else re += c.replace(/[.+^${}()|\\\/\]]/g, "\\$&");
  }
  const compiled = new RegExp(re + "$", "u");
  cache.set(glob, compiled);
  return compiled;
}

/** Whether a name matches a glob (see {@linkcode globToRegExp}). */
export function globMatch(glob: string, name: string): boolean {
  return globToRegExp(glob).test(name);
}

/**
 * Selects the databases to back up, keeping the input order: those matching any include glob
 * (all when `include` is empty), minus those matching any exclude glob, minus system databases.
 */
export function selectDatabases(
  engine: Pick<Engine, "isSystemDatabase">,
  all: readonly DatabaseInfo[],
  include: readonly string[],
  exclude: readonly string[],
): DatabaseInfo[] {
  return all.filter((db) =>
    (include.length === 0 || include.some((g) => globMatch(g, db.name))) &&
    !exclude.some((g) => globMatch(g, db.name)) &&
    !engine.isSystemDatabase(db.name)
  );
}

/** Whether an account is excluded by the instance's `users.exclude` globs. */
export function excludedAccount(patterns: readonly string[], user: string, host?: string): boolean {
  const full = host === undefined ? user : `${user}@${host}`;
  return patterns.some((p) => globMatch(p, full) || globMatch(p, user));
}
