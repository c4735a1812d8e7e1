/**
 * The kill drill's random choices, all from one seed so a failing run can be repeated: where in
 * a restore each kill lands, and whether the restore is re-run right after it.
 *
 * @module
 */

/** A deterministic generator of numbers in [0, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One kill point of a drill. */
export interface KillPoint {
  /** "appear": the instant the target shows up on the server; "at": `fraction` of a restore. */
  kind: "appear" | "at";
  /** Fraction of a whole restore's duration after the restore's start ("at" only). */
  fraction: number;
  /** Whether the restore is run again right after the kill (else the next point runs over T). */
  rerun: boolean;
}

/**
 * The instant the target appears, then `n` points drawn uniformly in [0.05, 0.98] of a whole
 * restore, each with a fair coin for the re-run.
 */
export function drawPoints(random: () => number, n: number): KillPoint[] {
  const points: KillPoint[] = [{ kind: "appear", fraction: 0, rerun: random() < 0.5 }];
  for (let i = 0; i < n; i++) {
    const fraction = 0.05 + random() * 0.93;
    points.push({ kind: "at", fraction, rerun: random() < 0.5 });
  }
  return points;
}
