/**
 * Turns driver errors (npm:postgres, npm:mysql2) into {@linkcode ConnectError}s a sysadmin can
 * act on. Driver messages are used only when they are known not to echo the password, and are
 * redacted anyway.
 *
 * @module
 */
import { MASK, redact } from "../redact.ts";
import { ConnectError } from "./types.ts";

interface DriverError {
  code?: unknown;
  errno?: unknown;
  message?: unknown;
}

/** Maps a failed connection attempt to a clear error naming host, port and user. */
export function connectError(
  error: unknown,
  where: { host: string; port: number; user: string; password: string; connectTimeout: number },
): ConnectError {
  const e = (typeof error === "object" && error !== null ? error : {}) as DriverError;
  const code = String(e.code ?? "");
  let message = redact(String(e.message ?? error));
  if (where.password) message = message.split(where.password).join(MASK);
  const address = `${where.host}:${where.port}`;
  if (error instanceof Deno.errors.NotCapable || /Requires net access/.test(message)) {
    return new ConnectError(`missing permission: net access to ${address}`, "permission", {
      hint: `run with --allow-net=${address} (or add it to the permission set)`,
    });
  }
  // Keep only what is safe to show as the cause: code and redacted message.
  const cause = new Error(`${code ? code + ": " : ""}${message}`);
  switch (code) {
    case "ECONNREFUSED":
      return new ConnectError(`cannot connect to ${address}: connection refused`, "refused", {
        hint: "is the server running and listening on that address and port?",
        cause,
      });
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new ConnectError(`cannot resolve host name ${where.host}`, "dns", { cause });
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new ConnectError(`cannot connect to ${address}: host unreachable`, "refused", {
        cause,
      });
    case "CONNECT_TIMEOUT":
    case "ETIMEDOUT":
      return new ConnectError(
        `cannot connect to ${address}: no answer within ${where.connectTimeout} s`,
        "timeout",
        { hint: "check the host, the port, firewalls, or raise connect_timeout", cause },
      );
    case "28P01": // PostgreSQL invalid_password
    case "28000": // PostgreSQL invalid_authorization_specification (pg_hba reject)
    case "ER_ACCESS_DENIED_ERROR":
    case "ER_DBACCESS_DENIED_ERROR":
    case "ER_ACCESS_DENIED_NO_PASSWORD_ERROR":
      return new ConnectError(
        `authentication failed for user ${where.user} at ${address}`,
        "auth",
        { hint: "check the credential's user name and password", cause },
      );
  }
  if (e.errno === 1045) {
    return new ConnectError(`authentication failed for user ${where.user} at ${address}`, "auth", {
      cause,
    });
  }
  return new ConnectError(`cannot connect to ${address} as ${where.user}: ${message}`, "other", {
    cause,
  });
}
