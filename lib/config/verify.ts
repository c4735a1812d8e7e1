/**
 * Checks of `instances[].verify.instance` that need the whole configuration: the instance a
 * `verify --restore` restores onto must exist and run the same engine family.
 *
 * @module
 */
import { familyOfType } from "../engines/family.ts";
import type { Config } from "./types.ts";

/** One problem, at a path of the configuration. */
export interface VerifyTargetProblem {
  /** Path of the offending key. */
  path: (string | number)[];
  /** What is wrong. */
  message: string;
}

/** Every `verify.instance` that names no instance, itself, or one of another engine. */
export function verifyTargetProblems(config: Config): VerifyTargetProblem[] {
  const problems: VerifyTargetProblem[] = [];
  config.instances.forEach((inst, i) => {
    const id = inst.verify?.instance;
    if (id === undefined) return;
    const path = ["instances", i, "verify", "instance"];
    const target = config.instances.find((t) => t.id === id);
    if (!target) problems.push({ path, message: `no instance has the id "${id}"` });
    else if (familyOfType(target.type) !== familyOfType(inst.type)) {
      problems.push({
        path,
        message: `"${id}" is a ${target.type} instance; ${inst.id} is ${inst.type}`,
      });
    }
  });
  return problems;
}
