/**
 * systemd units for the nightly run, generated from the configuration: a oneshot service
 * sandboxed to what a backup needs (the storage folder and the metrics folder writable, the
 * rest of the system read-only) and a timer.
 *
 * @module
 */

/** What the units are made from. */
export interface UnitOptions {
  /** The command that runs the tool: the binary, or `deno run … main.ts`. */
  exec: string[];
  /** Arguments after it (global options and `backup --all`). */
  args: string[];
  /** Working directory (needed when run from source, for deno.json). */
  workingDirectory?: string;
  /** Folders the run writes: storage, metrics. */
  writePaths: string[];
  /** Files and folders the run reads (config, credentials, key, the source): checked against ProtectHome. */
  readPaths: string[];
  /** The run reads below /root or /home (Deno's cache when run from source). */
  readsHome?: boolean;
  /** `backup.nice` (0 = unchanged). */
  nice: number;
  /** `backup.ionice`. */
  ionice: "none" | "idle" | "best-effort";
  /** `OnCalendar=` of the timer. */
  onCalendar: string;
  /** `RandomizedDelaySec=` of the timer (seconds). */
  randomizedDelaySec: number;
}

/** Name of the service unit. */
export const SERVICE_NAME = "vya-backupdb.service";

/** Name of the timer unit. */
export const TIMER_NAME = "vya-backupdb.timer";

/** Default `OnCalendar=`: every night at 02:30 local time. */
export const DEFAULT_ON_CALENDAR = "*-*-* 02:30:00";

/** Default `RandomizedDelaySec=`: spreads many hosts' runs over 15 minutes. */
export const DEFAULT_RANDOMIZED_DELAY_SEC = 900;

/** Quotes one word for a unit file: `%` and `$` escaped, quotes where it holds blanks. */
export function unitWord(word: string): string {
  const escaped = word.replaceAll("\\", "\\\\").replaceAll("%", "%%").replaceAll("$", "$$$$");
  return /[\s"']/.test(word) || word === "" ? `"${escaped.replaceAll('"', '\\"')}"` : escaped;
}

const HOME = /^\/(home|root|run\/user)(\/|$)/;

/** The text of `vya-backupdb.service`. */
export function serviceUnit(o: UnitOptions): string {
  const under = (paths: string[]) => paths.some((p) => HOME.test(p));
  // ProtectHome=yes would hide a config or storage kept under /root or /home.
  const protectHome = under(o.writePaths)
    ? "no"
    : under(o.readPaths) || o.readsHome
    ? "read-only"
    : "yes";
  const lines = [
    "# Written by 'vya-backupdb systemd install'; changes are kept unless --force.",
    "[Unit]",
    "Description=vya-backupdb backup of every enabled database instance",
    "Wants=network-online.target",
    "After=network-online.target postgresql.service mariadb.service mysql.service",
    "",
    "[Service]",
    "Type=oneshot",
    `ExecStart=${[...o.exec, ...o.args].map(unitWord).join(" ")}`,
  ];
  if (o.workingDirectory) lines.push(`WorkingDirectory=${unitWord(o.workingDirectory)}`);
  if (o.nice > 0) lines.push(`Nice=${o.nice}`);
  if (o.ionice !== "none") lines.push(`IOSchedulingClass=${o.ionice}`);
  lines.push(
    "# Exit 1 (some databases failed) and every other non-zero code mark the unit failed.",
    "ProtectSystem=strict",
    `ReadWritePaths=${[...new Set(o.writePaths)].map(unitWord).join(" ")}`,
    `ProtectHome=${protectHome}`,
    "PrivateTmp=yes",
    "NoNewPrivileges=yes",
    "",
  );
  return lines.join("\n");
}

/** The text of `vya-backupdb.timer`. */
export function timerUnit(o: Pick<UnitOptions, "onCalendar" | "randomizedDelaySec">): string {
  return [
    "# Written by 'vya-backupdb systemd install'; changes are kept unless --force.",
    "[Unit]",
    "Description=Run vya-backupdb on schedule",
    "",
    "[Timer]",
    `OnCalendar=${o.onCalendar}`,
    `RandomizedDelaySec=${o.randomizedDelaySec}`,
    "Persistent=true",
    "",
    "[Install]",
    "WantedBy=timers.target",
    "",
  ].join("\n");
}
