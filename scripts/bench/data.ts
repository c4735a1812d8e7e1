/**
 * Benchmark data: realistic, moderately compressible rows (text, numbers, timestamps, JSON)
 * generated server-side (PostgreSQL generate_series, MariaDB SEQUENCE tables), so a gigabyte
 * takes about a minute instead of an hour of client round trips.
 *
 * Two tables of equal row count: `orders` (numbers, short enumerations, a free-text note from a
 * small vocabulary) and `events` (a JSON payload with a random session id). The random ids keep
 * the data from compressing absurdly well: gzip -6 gets 4.7x (pg_dump) and 5.4x (mariadb-dump),
 * in the range of real business dumps.
 *
 * Beside them, seven tables of varied sizes (`slice_2` … `slice_128`: every 2nd … 128th row of
 * `orders`, each with its primary key), so a restore has nine tables of very different sizes to
 * spread over its jobs; `events` stays the one large table.
 *
 * Size control: a first chunk of rows is inserted, the database dumped once to measure bytes
 * per row, and the remaining rows inserted to reach the requested uncompressed dump size.
 *
 * @module
 */
import type { MyServer, PgServer } from "../../tests/harness/servers.ts";

/** A benchmark server. */
export type BenchServer = PgServer | MyServer;

const WORDS = [
  "invoice",
  "delivery",
  "customer",
  "warehouse",
  "express",
  "standard",
  "priority",
  "return",
  "refund",
  "discount",
  "coupon",
  "gift",
  "wrap",
  "fragile",
  "signature",
  "required",
  "leave",
  "at",
  "door",
  "call",
  "before",
  "after",
  "noon",
  "morning",
  "evening",
  "weekend",
  "office",
  "home",
  "backorder",
  "partial",
  "shipment",
  "tracking",
  "number",
  "pending",
  "approved",
  "verified",
  "manual",
  "review",
  "loyalty",
  "points",
];
const AGENTS = [
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
  "curl/8.5.0",
  "okhttp/4.12.0",
];
const RESOURCES = ["orders", "customers", "products", "carts", "payments", "search", "reviews"];
const KINDS = ["page_view", "click", "add_to_cart", "checkout", "login", "logout", "api_call"];
const STATUSES = ["new", "paid", "shipped", "delivered", "cancelled"];

const CALIBRATION_ROWS = 20_000;
const CHUNK_ROWS = 500_000;

const sqlList = (xs: string[]) => xs.map((x) => `'${x}'`).join(",");

function pgInsert(from: number, to: number): string {
  const w = `(ARRAY[${sqlList(WORDS)}])`;
  const word = () => `${w}[1 + floor(random() * ${WORDS.length})::int]`;
  return `
INSERT INTO orders
SELECT i, 1 + floor(random() * 50000)::int,
  timestamptz '2023-01-01 00:00:00+00' + i * interval '7 seconds' + random() * interval '5 seconds',
  (ARRAY[${sqlList(STATUSES)}])[1 + floor(random() * 5)::int],
  (ARRAY['EUR','USD','GBP'])[1 + floor(random() * 3)::int],
  round((random() * 900 + 5)::numeric, 2), 1 + floor(random() * 9)::int,
  'SKU-' || lpad((floor(random() * 20000))::int::text, 6, '0'),
  CASE WHEN random() < 0.15 THEN NULL ELSE concat_ws(' ', ${word()}, ${word()}, ${word()},
    ${word()}, CASE WHEN random() < 0.5 THEN ${word()} END) END
FROM generate_series(${from}, ${to}) AS i;
INSERT INTO events
SELECT i, timestamptz '2023-01-01 00:00:00+00' + i * interval '3 seconds',
  (ARRAY[${sqlList(KINDS)}])[1 + floor(random() * ${KINDS.length})::int],
  1 + floor(random() * 50000)::int,
  '10.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int || '.' ||
    floor(random() * 256)::int,
  jsonb_build_object(
    'agent', (ARRAY[${sqlList(AGENTS)}])[1 + floor(random() * ${AGENTS.length})::int],
    'path', '/api/v1/' || (ARRAY[${sqlList(RESOURCES)}])[1 + floor(random() * 7)::int] || '/' ||
      floor(random() * 100000)::int,
    'status', (ARRAY[200,200,200,200,201,204,301,404,500])[1 + floor(random() * 9)::int],
    'latency_ms', round((random() * 400)::numeric, 1),
    'session', substr(md5(random()::text), 1, 16),
    'tags', jsonb_build_array(${word()}, ${word()}))
FROM generate_series(${from}, ${to}) AS i;`;
}

const PG_SCHEMA = `
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id integer NOT NULL, created_at timestamptz NOT NULL,
  status text NOT NULL, currency char(3) NOT NULL, amount numeric(12,2) NOT NULL,
  quantity integer NOT NULL, sku text NOT NULL, note text);
CREATE TABLE events (
  id bigint PRIMARY KEY, occurred_at timestamptz NOT NULL, kind text NOT NULL,
  user_id integer NOT NULL, ip text NOT NULL, payload jsonb NOT NULL);
CREATE INDEX orders_customer ON orders (customer_id);`;

function myInsert(from: number, to: number): string {
  const w = sqlList(WORDS);
  const word = () => `ELT(1 + FLOOR(RAND() * ${WORDS.length}), ${w})`;
  const pick = (xs: string[]) => `ELT(1 + FLOOR(RAND() * ${xs.length}), ${sqlList(xs)})`;
  const seq = `seq_${from}_to_${to}`;
  return `
INSERT INTO orders
SELECT seq, 1 + FLOOR(RAND() * 50000),
  TIMESTAMP '2023-01-01 00:00:00' + INTERVAL seq * 7 + FLOOR(RAND() * 5) SECOND,
  ${pick(STATUSES)}, ${pick(["EUR", "USD", "GBP"])},
  ROUND(RAND() * 900 + 5, 2), 1 + FLOOR(RAND() * 9),
  CONCAT('SKU-', LPAD(FLOOR(RAND() * 20000), 6, '0')),
  IF(RAND() < 0.15, NULL, CONCAT_WS(' ', ${word()}, ${word()}, ${word()}, ${word()},
    IF(RAND() < 0.5, ${word()}, NULL)))
FROM ${seq};
INSERT INTO events
SELECT seq, TIMESTAMP '2023-01-01 00:00:00' + INTERVAL seq * 3 SECOND, ${pick(KINDS)},
  1 + FLOOR(RAND() * 50000),
  CONCAT('10.', FLOOR(RAND() * 256), '.', FLOOR(RAND() * 256), '.', FLOOR(RAND() * 256)),
  JSON_OBJECT('agent', ${pick(AGENTS)},
    'path', CONCAT('/api/v1/', ${pick(RESOURCES)}, '/', FLOOR(RAND() * 100000)),
    'status', ELT(1 + FLOOR(RAND() * 9), 200,200,200,200,201,204,301,404,500),
    'latency_ms', ROUND(RAND() * 400, 1),
    'session', SUBSTR(MD5(RAND()), 1, 16),
    'tags', JSON_ARRAY(${word()}, ${word()}))
FROM ${seq};`;
}

const MY_SCHEMA = `
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id int NOT NULL, created_at datetime NOT NULL,
  status varchar(16) NOT NULL, currency char(3) NOT NULL, amount decimal(12,2) NOT NULL,
  quantity int NOT NULL, sku varchar(16) NOT NULL, note varchar(255),
  KEY orders_customer (customer_id)) ENGINE=InnoDB;
CREATE TABLE events (
  id bigint PRIMARY KEY, occurred_at datetime NOT NULL, kind varchar(32) NOT NULL,
  user_id int NOT NULL, ip varchar(15) NOT NULL, payload json NOT NULL) ENGINE=InnoDB;`;

/** Divisors of the slice tables: `slice_N` holds every Nth row of `orders`. */
export const SLICES = [2, 4, 8, 16, 32, 64, 128];

/** (Re)creates the slice tables from `orders`. */
async function createSlices(server: BenchServer, database: string): Promise<void> {
  const sql = SLICES.map((n) =>
    server.engine === "postgresql"
      ? `DROP TABLE IF EXISTS slice_${n}; CREATE TABLE slice_${n} AS SELECT * FROM orders ` +
        `WHERE id % ${n} = 0; ALTER TABLE slice_${n} ADD PRIMARY KEY (id);`
      : `DROP TABLE IF EXISTS slice_${n}; CREATE TABLE slice_${n} (PRIMARY KEY (id)) ` +
        `ENGINE=InnoDB AS SELECT * FROM orders WHERE id % ${n} = 0;`
  ).join("\n");
  await server.sql(sql, { database });
}

/** Parses a size as the scripts take it: `200MB`, `1GB`, `1.5G` (MB = 10^6 bytes). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(MB|GB|M|G)$/i.exec(text.trim());
  if (!m) throw new Error(`size "${text}": expected e.g. 200MB, 1GB, 4GB`);
  return Math.round(Number(m[1]) * (m[2].toUpperCase().startsWith("G") ? 1e9 : 1e6));
}

/** What was generated. */
export interface Dataset {
  /** Database name. */
  database: string;
  /** Rows per table. */
  rowsPerTable: number;
  /** Bytes of the uncompressed dump, measured with the engine's dump tool. */
  dumpBytes: number;
}

/** Creates an empty database. */
export async function createDatabase(server: BenchServer, name: string): Promise<void> {
  await server.sql(
    server.engine === "postgresql"
      ? `CREATE DATABASE ${name}`
      : `CREATE DATABASE ${name} CHARACTER SET utf8mb4`,
  );
}

/** Drops a database if it exists. */
export async function dropDatabase(server: BenchServer, name: string): Promise<void> {
  await server.sql(
    server.engine === "postgresql"
      ? `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`
      : `DROP DATABASE IF EXISTS ${name}`,
  );
}

async function insertRows(
  server: BenchServer,
  database: string,
  from: number,
  to: number,
): Promise<void> {
  for (let a = from; a <= to; a += CHUNK_ROWS) {
    const b = Math.min(to, a + CHUNK_ROWS - 1);
    await server.sql(server.engine === "postgresql" ? pgInsert(a, b) : myInsert(a, b), {
      database,
    });
  }
}

/**
 * Generates a database whose uncompressed dump is about `targetBytes`, and measures the dump.
 * `dumpSize` runs the engine's dump tool once and returns its byte count.
 */
export async function generateDataset(
  server: BenchServer,
  database: string,
  targetBytes: number,
  dumpSize: (database: string) => Promise<number>,
  log: (line: string) => void,
): Promise<Dataset> {
  await dropDatabase(server, database);
  await createDatabase(server, database);
  await server.sql(server.engine === "postgresql" ? PG_SCHEMA : MY_SCHEMA, { database });
  await insertRows(server, database, 1, CALIBRATION_ROWS);
  // The slices grow with orders: calibrated with them, so the total dump hits the target.
  await createSlices(server, database);
  const sample = await dumpSize(database);
  const rows = Math.max(CALIBRATION_ROWS, Math.round(targetBytes / (sample / CALIBRATION_ROWS)));
  log(
    `  ${server.engine}/${database}: ${Math.round(sample / CALIBRATION_ROWS)} dump bytes/row, ` +
      `inserting ${rows} rows per table`,
  );
  if (rows > CALIBRATION_ROWS) await insertRows(server, database, CALIBRATION_ROWS + 1, rows);
  await createSlices(server, database);
  if (server.engine === "postgresql") await server.sql("VACUUM ANALYZE", { database });
  const dumpBytes = await dumpSize(database);
  return { database, rowsPerTable: rows, dumpBytes };
}

/** Copies a generated database under another name (PostgreSQL: from it as a template). */
export async function cloneDataset(server: BenchServer, from: string, to: string): Promise<void> {
  await dropDatabase(server, to);
  if (server.engine === "postgresql") {
    await server.sql(`CREATE DATABASE ${to} TEMPLATE ${from}`);
    return;
  }
  await createDatabase(server, to);
  await server.sql(MY_SCHEMA, { database: to });
  await server.sql(
    `INSERT INTO orders SELECT * FROM ${from}.orders; INSERT INTO events SELECT * FROM ${from}.events;`,
    { database: to },
  );
  await createSlices(server, to);
}
