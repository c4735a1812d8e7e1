/**
 * Prints the longest functions of lib/ and exits 1 when one is 100 lines or longer (the style
 * guide: a long command reads as named steps).
 *
 * A function's length is its lines from its first token to its closing brace, comments and blank
 * lines inside included, nested functions included (each is also measured on its own).
 *
 * Its own deno.json pins TypeScript (the parser) with its own lockfile: in the project's, the
 * package would become valibot's optional peer and 23 MB of the compiled binary.
 *
 * Usage: deno run --config scripts/fn_length/deno.json -A scripts/fn_length/fn_length.ts [N]
 *
 * @module
 */
import ts from "typescript";

const ROOT = "lib";
const LIMIT = 100;
const shown = Number(Deno.args[0] ?? 10);

interface Measured {
  name: string;
  file: string;
  line: number;
  lines: number;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await sourceFiles(path));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) {
      out.push(path);
    }
  }
  return out;
}

/** A readable name: the declaration's, else what it is assigned to or passed to. */
function nameOf(node: ts.FunctionLikeDeclaration, sf: ts.SourceFile): string {
  const own = node.name?.getText(sf);
  const cls = ts.isClassLike(node.parent) && node.parent.name ? `${node.parent.name.text}.` : "";
  if (ts.isConstructorDeclaration(node)) return `${cls}constructor`;
  if (own) return cls + own;
  const p = node.parent;
  if (
    ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) ||
    ts.isPropertyDeclaration(p)
  ) {
    return cls + p.name.getText(sf);
  }
  if (ts.isCallExpression(p)) {
    return `(callback of ${p.expression.getText(sf).slice(0, 40)})`;
  }
  return "(anonymous)";
}

function measure(file: string, text: string): Measured[] {
  const sf = ts.createSourceFile(
    file,
    text,
    ts.ScriptTarget.Latest,
    true,
    ts.ScriptKind.TS,
  );
  const out: Measured[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const fn = node as ts.FunctionLikeDeclaration;
      const first = sf.getLineAndCharacterOfPosition(fn.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(fn.getEnd()).line;
      out.push({
        name: nameOf(fn, sf),
        file,
        line: first + 1,
        lines: last - first + 1,
      });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

const all: Measured[] = [];
for (const file of (await sourceFiles(ROOT)).sort()) {
  all.push(...measure(file, await Deno.readTextFile(file)));
}
all.sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file));
const over = all.filter((m) => m.lines >= LIMIT);
for (const m of all.slice(0, Math.max(shown, over.length))) {
  console.log(`${String(m.lines).padStart(4)}  ${m.file}:${m.line}  ${m.name}`);
}
if (over.length > 0) {
  console.error(
    `fn length: ${over.length} function(s) of ${LIMIT} lines or more in ${ROOT}/`,
  );
  Deno.exit(1);
}
console.log(`fn length: every function of ${ROOT}/ is under ${LIMIT} lines`);
