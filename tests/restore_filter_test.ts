/**
 * The dump filter reads by structure whatever the chunking: COPY data, dollar-quoted bodies and
 * quoted strings that look like statements are never touched.
 */
import { assertEquals } from "./harness/assert.ts";
import {
  DumpLineReader,
  type ForeignStatementError,
  MAX_HELD_LINE,
} from "../lib/restore/dump_filter.ts";
import { postgresDialect } from "../lib/engines/postgres/dialect.ts";
import { mysqlDialect } from "../lib/engines/mysql/dialect.ts";
import { concatBytes } from "../lib/stream/bytes.ts";

const DUMP = [
  "CREATE DATABASE old;",
  "\\connect old",
  "--",
  "-- PostgreSQL database dump",
  "--",
  "\\restrict abc",
  "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$",
  "SELECT 1;",
  "ALTER TABLE t OWNER TO inside_body;",
  "$$;",
  "ALTER FUNCTION public.f() OWNER TO alice;",
  "COMMENT ON TABLE t IS 'x;",
  "ALTER TABLE t OWNER TO inside_string;';",
  "COPY public.t (x) FROM stdin;",
  "ALTER TABLE t OWNER TO inside_copy;",
  "\\\\.",
  "\\.",
  'ALTER TABLE public."a OWNER TO b" OWNER TO "Bob ""B""";',
  'GRANT SELECT ON TABLE public.t TO carol, "Dave";',
  "REVOKE ALL ON SCHEMA public FROM PUBLIC;",
  "--",
  "-- PostgreSQL database dump complete",
  "--",
  "",
].join("\n");

function run(chunkSize: number, options: { skipHeader?: boolean; noOwner?: boolean }) {
  const reader = new DumpLineReader({ dialect: postgresDialect, ...options });
  const bytes = new TextEncoder().encode(DUMP);
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) {
    reader.push(bytes.subarray(i, i + chunkSize), (s) => out.push(s.slice()));
  }
  reader.end((s) => out.push(s.slice()));
  const text = new TextDecoder().decode(
    new Uint8Array(out.flatMap((c) => [...c])),
  );
  return { text, facts: reader.facts, reader };
}

Deno.test("filter: untouched without options, any chunk size", () => {
  for (const size of [1, 2, 3, 5, 7, 64, 4096]) {
    assertEquals(run(size, {}).text, DUMP, `size ${size}`);
  }
});

Deno.test("filter: header and ownership left out by structure", () => {
  const lines = DUMP.split("\n");
  const expected = lines.filter((_, i) => i >= 3 && i !== 10 && i !== 17).join("\n");
  for (const size of [1, 3, 11, 4096]) {
    const { text, facts, reader } = run(size, { skipHeader: true, noOwner: true });
    assertEquals(text, expected, `size ${size}`);
    assertEquals([...facts.ownerRoles].sort(), ['Bob "B"', "alice"]);
    assertEquals([...facts.privilegeRoles].sort(), ["Dave", "carol"]);
    assertEquals(facts.headerStatements, ["CREATE DATABASE", "\\connect"]);
    // Line 10 of the output (the COPY line) is line 14 of the input (3 header lines, 1 owner).
    assertEquals(reader.inputLine(10), 14);
    assertEquals(reader.inputLine(15), 20);
  }
});

Deno.test("filter: settings an older target does not know are left out, nothing else", () => {
  const dump = [
    "-- PostgreSQL database dump",
    "SET statement_timeout = 0;",
    "SET transaction_timeout = 0;",
    "COPY public.t (x) FROM stdin;",
    "SET transaction_timeout = 0;",
    "\\.",
    "-- PostgreSQL database dump complete",
    "",
  ].join("\n");
  const filtered = (targetMajor: number) => {
    const reader = new DumpLineReader({ dialect: postgresDialect, targetMajor });
    const out: string[] = [];
    const decode = (s: Uint8Array) => out.push(new TextDecoder().decode(s));
    reader.push(new TextEncoder().encode(dump), decode);
    reader.end(decode);
    return out.join("");
  };
  // PostgreSQL 16 rejects transaction_timeout (new in 17); the line inside COPY data is data.
  assertEquals(filtered(16), dump.replace("SET transaction_timeout = 0;\nCOPY", "COPY"));
  assertEquals(filtered(17), dump);
});

Deno.test("filter: long COPY blocks keep exact line numbers and end only at their terminator", () => {
  // Data lines long enough for the word-at-a-time newline count, with backslashes that are no
  // terminator (\N, an escaped backslash, "x\."), a CRLF-terminated block, then an OWNER TO
  // statement to drop: the line it maps to proves every data line was counted.
  const row = (i: number) => `${i}\t${"x".repeat(i % 97)}\t\\N\t\\\\.${i % 3 ? "\\." : ""}`;
  const rows = Array.from({ length: 3000 }, (_, i) => row(i));
  const text = [
    "-- PostgreSQL database dump",
    "COPY public.a (x) FROM stdin;",
    ...rows,
    "\\.",
    "COPY public.b (x) FROM stdin;\r",
    "y\\.\r",
    "\\.\r",
    "ALTER TABLE public.a OWNER TO alice;",
    "CREATE TABLE public.c (x int);",
    "-- PostgreSQL database dump complete",
    "",
  ].join("\n");
  const bytes = new TextEncoder().encode(text);
  const ownerLine = text.split("\n").indexOf("ALTER TABLE public.a OWNER TO alice;") + 1;
  for (const size of [1, 5, 64, 4099, 65536, 1 << 20]) {
    const reader = new DumpLineReader({ dialect: postgresDialect, noOwner: true });
    const out: Uint8Array[] = [];
    // Odd offsets: the word-wise count must not depend on the chunk's alignment.
    const copy = new Uint8Array(bytes.length + 1);
    copy.set(bytes, 1);
    const shifted = copy.subarray(1);
    for (let i = 0; i < shifted.length; i += size) {
      reader.push(shifted.subarray(i, i + size), (s) => out.push(s.slice()));
    }
    reader.end((s) => out.push(s.slice()));
    const got = new TextDecoder().decode(new Uint8Array(out.flatMap((c) => [...c])));
    assertEquals(got, text.replace("ALTER TABLE public.a OWNER TO alice;\n", ""), `size ${size}`);
    assertEquals(reader.facts.lines, text.split("\n").length - 1, `size ${size}`);
    assertEquals(reader.facts.ownerRoles, new Set(["alice"]), `size ${size}`);
    assertEquals(reader.facts.relations, 3, `size ${size}: CREATE TABLE after the blocks seen`);
    // The line after the dropped one: output line ownerLine is input line ownerLine + 1.
    assertEquals(reader.inputLine(ownerLine), ownerLine + 1, `size ${size}`);
  }
});

Deno.test("filter: MySQL rows are skipped by their first byte, statements after them still seen", () => {
  const rows = Array.from({ length: 2000 }, (_, i) => `(${i},'USE x; DEFINER=\`no\`@\`x\`'),`);
  const text = [
    "-- MariaDB dump 10.19",
    "INSERT INTO `t` VALUES",
    ...rows,
    "(2000,'z');",
    "/*!50013 DEFINER=`bob`@`%` SQL SECURITY DEFINER */",
    "USE other;",
    "-- Dump completed",
    "",
  ].join("\n");
  const bytes = new TextEncoder().encode(text);
  for (const size of [1, 7, 4099, 65536]) {
    const reader = new DumpLineReader({ dialect: mysqlDialect, collectDefiners: true });
    for (let i = 0; i < bytes.length; i += size) reader.push(bytes.subarray(i, i + size), () => {});
    reader.end(() => {});
    assertEquals([...reader.facts.definers.keys()], ["'bob'@'%'"], `size ${size}`);
    assertEquals(reader.facts.foreign?.line, rows.length + 5, `size ${size}`);
    assertEquals(reader.facts.lines, text.split("\n").length - 1, `size ${size}`);
    // The load's filter (no scanner) counts the lines itself, four bytes at a time.
    const plain = new DumpLineReader({ dialect: mysqlDialect });
    for (let i = 0; i < bytes.length; i += size) plain.push(bytes.subarray(i, i + size), () => {});
    plain.end(() => {});
    assertEquals(plain.facts.lines, text.split("\n").length - 1, `size ${size} (no scanner)`);
  }
});

/** Feeds `text` in chunks of `size` through a reader; returns what it passed on, or the error. */
function pass(
  text: string,
  size: number,
  options: ConstructorParameters<typeof DumpLineReader>[0],
): { out: string; error?: unknown } {
  const reader = new DumpLineReader(options);
  const bytes = new TextEncoder().encode(text);
  const out: Uint8Array[] = [];
  const keep = (span: Uint8Array) => out.push(span.slice());
  let error: unknown;
  try {
    for (let i = 0; i < bytes.length; i += size) reader.push(bytes.subarray(i, i + size), keep);
    reader.end(keep);
  } catch (e) {
    error = e;
  }
  return { out: new TextDecoder().decode(concatBytes(out)), error };
}

Deno.test("filter: a psql command padded past the held-line limit is still foreign", () => {
  // A line longer than MAX_HELD_LINE streams through unread; its start must still be judged.
  const text = [
    "--",
    "-- PostgreSQL database dump",
    "--",
    "CREATE TABLE t (x int);",
    "\\! touch /tmp/pwned" + " ".repeat(MAX_HELD_LINE + 10),
    "DROP DATABASE other" + " ".repeat(MAX_HELD_LINE + 10) + ";",
    "-- PostgreSQL database dump complete",
    "",
  ].join("\n");
  for (const size of [7, 65536, 1 << 20]) {
    const looked = pass(text, size, { dialect: postgresDialect });
    assertEquals(looked.error, undefined);
    assertEquals(looked.out, text, "without refuseForeign the reader only looks");
    const r = new DumpLineReader({ dialect: postgresDialect });
    const bytes = new TextEncoder().encode(text);
    for (let i = 0; i < bytes.length; i += size) r.push(bytes.subarray(i, i + size), () => {});
    r.end(() => {});
    assertEquals(r.facts.foreign?.line, 5);
    assertEquals(r.facts.foreign?.text.trimEnd(), "\\! touch /tmp/pwned");
    const stopped = pass(text, size, { dialect: postgresDialect, refuseForeign: true });
    assertEquals((stopped.error as ForeignStatementError)?.statement?.line, 5, `size ${size}`);
    assertEquals(stopped.out.includes("\\!"), false, `size ${size}: nothing of it passed on`);
    assertEquals(stopped.out.includes("CREATE TABLE t (x int);\n"), true, `size ${size}`);
  }
});

Deno.test("filter: refuseForeign stops before any byte of a foreign statement is passed on", () => {
  const pg = [
    "--",
    "-- PostgreSQL database dump",
    "--",
    "\\restrict k",
    "CREATE TABLE t (x int);",
    "COPY public.t (x) FROM stdin;",
    "\\connect inside_copy",
    "\\.",
    "\\connect other",
    "CREATE TABLE after (x int);",
    "",
  ].join("\n");
  const my = [
    "-- MariaDB dump 10.19",
    "INSERT INTO `t` VALUES (1),(2);",
    "/*!40000 ALTER TABLE `t` ENABLE KEYS */;",
    "DROP DATABASE other_db;",
    "CREATE TABLE after (x int);",
    "",
  ].join("\n");
  const cases = [
    { text: pg, dialect: postgresDialect, line: 9, cut: "\\connect other" },
    { text: my, dialect: mysqlDialect, line: 4, cut: "DROP DATABASE other_db" },
    // The last line without a newline: judged at the end, and still not passed on.
    {
      text: my.replace(/CREATE TABLE after.*\n$/, "").trimEnd(),
      dialect: mysqlDialect,
      line: 4,
      cut: "DROP",
    },
  ];
  for (const c of cases) {
    for (const size of [1, 3, 5, 11, 64, 65536]) {
      const r = pass(c.text, size, {
        dialect: c.dialect,
        refuseForeign: true,
        collectDefiners: true,
      });
      const what = `${c.dialect.family}, chunks of ${size}`;
      assertEquals((r.error as ForeignStatementError)?.statement?.line, c.line, what);
      assertEquals(c.text.startsWith(r.out), true, what);
      // Not even a prefix of it (a client runs what it holds when its input ends).
      assertEquals(
        r.out.length <= c.text.indexOf(c.cut),
        true,
        `${what}: passed on ${r.out.length}`,
      );
      assertEquals(r.out.includes("CREATE TABLE after"), false, what);
    }
    // Without it, the same bytes all pass (the verify pass refuses such a file).
    assertEquals(pass(c.text, 64, { dialect: c.dialect, collectDefiners: true }).out, c.text);
  }
});

Deno.test("filter: foreign statements in lower case, indented, or as client commands are caught", () => {
  const pgHead = "--\n-- PostgreSQL database dump\n--\nCREATE TABLE t (x int);\n";
  const myHead = "-- MariaDB dump 10.19\nINSERT INTO `t` VALUES (1),(2);\n";
  const cases = [
    { head: pgHead, line: "drop database other;", dialect: postgresDialect },
    { head: pgHead, line: "copy t to program 'id';", dialect: postgresDialect },
    { head: pgHead, line: "   \\connect other", dialect: postgresDialect },
    { head: pgHead, line: "\tALTER SYSTEM SET fsync = off;", dialect: postgresDialect },
    { head: myHead, line: "  USE other;", dialect: mysqlDialect },
    { head: myHead, line: "\tDROP DATABASE other;", dialect: mysqlDialect },
    { head: myHead, line: "connect other", dialect: mysqlDialect },
    { head: myHead, line: "system id", dialect: mysqlDialect },
    { head: myHead, line: "source /tmp/x.sql", dialect: mysqlDialect },
  ];
  for (const c of cases) {
    const text = c.head + c.line + "\nCREATE TABLE after (x int);\n";
    for (const size of [1, 9, 65536]) {
      const what = `${JSON.stringify(c.line)}, chunks of ${size}`;
      const r = pass(text, size, { dialect: c.dialect, refuseForeign: true });
      assertEquals(r.error instanceof Error, true, what);
      assertEquals(r.out.includes(c.line.trim().slice(0, 4)), false, `${what}: passed on`);
    }
  }
  // What the dump tools write at those places is not taken for one.
  const fine = [
    { text: pgHead + "COMMENT ON TABLE t IS 'drop database other';\n", dialect: postgresDialect },
    {
      text: myHead + "DELIMITER ;;\nCREATE PROCEDURE p()\nBEGIN\n  SET @use_count = 1;\n" +
        "  SELECT source_id FROM t;\nEND ;;\nDELIMITER ;\n",
      dialect: mysqlDialect,
    },
  ];
  for (const f of fine) {
    const r = pass(f.text, 7, { dialect: f.dialect, refuseForeign: true });
    assertEquals(r.error, undefined);
    assertEquals(r.out, f.text);
  }
});

Deno.test("filter: a second statement or a psql command after a statement on one line is judged too", () => {
  const head = "--\n-- PostgreSQL database dump\n--\nCREATE TABLE t (x int);\n";
  const foreign = [
    "SELECT 1; \\connect other",
    "SELECT 1; DROP DATABASE other;",
    "SELECT 1 \\! id",
    "CREATE TABLE u (\n    a int); \\connect other",
    "SELECT 1; /* c */ ALTER SYSTEM SET fsync = off;",
  ];
  for (const line of foreign) {
    const text = head + line + "\nCREATE TABLE after (x int);\n";
    for (const size of [1, 13, 65536]) {
      const what = `${JSON.stringify(line)}, chunks of ${size}`;
      const looked = new DumpLineReader({ dialect: postgresDialect });
      const bytes = new TextEncoder().encode(text);
      for (let i = 0; i < bytes.length; i += size) {
        looked.push(bytes.subarray(i, i + size), () => {});
      }
      looked.end(() => {});
      assertEquals(looked.facts.foreign?.line, 5 + line.split("\n").length - 1, what);
      const r = pass(text, size, { dialect: postgresDialect, refuseForeign: true });
      assertEquals(r.error instanceof Error, true, what);
      assertEquals(r.out.includes("other") || r.out.includes("\\!"), false, `${what}: sent`);
    }
  }
  // Where pg_dump writes such text it is quoted, commented or in a body: not judged.
  const fine = head + [
    "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$SELECT 1; DROP DATABASE other; \\connect x$$;",
    "COMMENT ON TABLE t IS E'a\\\\b; DROP DATABASE other; \\\\connect x';",
    "-- SELECT 1; \\connect other",
    "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO t VALUES (1); DELETE FROM t);",
    "",
  ].join("\n");
  const r = pass(fine, 5, { dialect: postgresDialect, refuseForeign: true });
  assertEquals(r.error, undefined);
  assertEquals(r.out, fine);
});
