/**
 * `systemd print` and `systemd install`: units that `systemd-analyze verify` accepts without a
 * single warning (it exits 0 even for unknown keys, so stderr must be empty), an OnCalendar
 * that `systemd-analyze calendar` accepts, and an install that never replaces a changed unit
 * without --force.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./harness/assert.ts";
import { runTool } from "./harness/alerts.ts";
import { REPO_ROOT, runCli } from "./helpers/cli.ts";

async function setup(): Promise<{ dir: string; config: string; units: string }> {
  const dir = await Deno.makeTempDir({ prefix: "vya-systemd-" });
  const config = join(dir, "config.yaml");
  await Deno.writeTextFile(
    config,
    `storage: { path: /var/backups/vya-backupdb }
backup: { nice: 10, ionice: idle }
metrics: { textfile: /var/lib/prometheus/node-exporter/vya_backupdb.prom }
instances: []
`,
  );
  const units = join(dir, "units");
  await Deno.mkdir(units);
  return { dir, config, units };
}

async function verify(paths: string[]): Promise<void> {
  const r = await runTool("systemd-analyze", ["verify", ...paths], REPO_ROOT);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stderr, "", "systemd-analyze verify warned");
}

Deno.test("systemd print: units that systemd-analyze verify accepts with no warning", async () => {
  const s = await setup();
  try {
    const r = await runCli(["--config", s.config, "systemd", "print"]);
    assertEquals(r.code, 0, r.stderr);
    const [service, timer] = r.stdout.split(/^# vya-backupdb\.timer\n/m);
    assertStringIncludes(service, "Type=oneshot");
    assertStringIncludes(service, `--config ${s.config} --quiet backup --all`);
    assertStringIncludes(service, "Nice=10\nIOSchedulingClass=idle\n");
    assertStringIncludes(
      service,
      "ReadWritePaths=/var/backups/vya-backupdb /var/lib/prometheus/node-exporter\n",
    );
    for (
      const k of ["ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes", "ProtectHome="]
    ) {
      assertStringIncludes(service, k);
    }
    assertStringIncludes(timer, "OnCalendar=*-*-* 02:30:00\n");
    assertStringIncludes(timer, "Persistent=true\n");
    assertStringIncludes(timer, "RandomizedDelaySec=");
    await Deno.writeTextFile(
      join(s.units, "vya-backupdb.service"),
      service.replace(/^# vya-backupdb\.service\n/, ""),
    );
    await Deno.writeTextFile(join(s.units, "vya-backupdb.timer"), timer);
    await verify([join(s.units, "vya-backupdb.service"), join(s.units, "vya-backupdb.timer")]);
    // The check can fail: an unknown key only warns on stderr.
    await Deno.writeTextFile(join(s.units, "vya-backupdb.timer"), timer + "Bogus=1\n");
    const bad = await runTool("systemd-analyze", ["verify", join(s.units, "vya-backupdb.timer")]);
    assert(bad.stderr.includes("Bogus"), bad.stderr);
  } finally {
    await Deno.remove(s.dir, { recursive: true });
  }
});

Deno.test("systemd install: writes both units, keeps a changed one without --force, --on-calendar", async () => {
  const s = await setup();
  try {
    const calendar = "Mon..Fri *-*-* 03:15:00";
    assertEquals((await runTool("systemd-analyze", ["calendar", calendar])).code, 0);
    const args = [
      "--config",
      s.config,
      "systemd",
      "install",
      "--dir",
      s.units,
      "--on-calendar",
      calendar,
    ];
    const first = await runCli(args);
    assertEquals(first.code, 0, first.stderr);
    assertStringIncludes(
      first.stdout,
      "systemctl daemon-reload && systemctl enable --now vya-backupdb.timer",
    );
    const service = join(s.units, "vya-backupdb.service");
    const timer = join(s.units, "vya-backupdb.timer");
    assertEquals((await Deno.stat(timer)).mode! & 0o777, 0o644);
    assertStringIncludes(await Deno.readTextFile(timer), `OnCalendar=${calendar}\n`);
    await verify([service, timer]);
    const value = (await Deno.readTextFile(timer)).match(/^OnCalendar=(.*)$/m)![1];
    const cal = await runTool("systemd-analyze", ["calendar", value]);
    assertEquals(cal.code, 0, cal.stderr);
    const again = await runCli(args);
    assertEquals(again.code, 0);
    assertStringIncludes(again.stdout, `unchanged ${timer}`);
    await Deno.writeTextFile(timer, (await Deno.readTextFile(timer)) + "# local change\n");
    const refused = await runCli(args);
    assertEquals(refused.code, 3, refused.stderr);
    assertStringIncludes(refused.stderr, `${timer} exists with other content`);
    assertStringIncludes(await Deno.readTextFile(timer), "# local change");
    const forced = await runCli([...args, "--force"]);
    assertEquals(forced.code, 0, forced.stderr);
    assert(!(await Deno.readTextFile(timer)).includes("# local change"));
  } finally {
    await Deno.remove(s.dir, { recursive: true });
  }
});
