/**
 * Plain-text tables for the commands' human output: columns padded to their widest cell.
 *
 * @module
 */

/** The lines of a table whose first row is the header; trailing spaces trimmed. */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
}
