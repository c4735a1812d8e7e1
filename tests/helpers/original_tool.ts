/**
 * The original Python tool's way of writing its credential files, run through the reference
 * Fernet implementation (Debian's python3-cryptography) with the host-name key. Each script
 * reads `{"path": …, "entries": {id: PyEntry}}` as JSON on stdin.
 *
 * @module
 */

/** The original tool's key and Fernet calls, as its Python source does them. */
export const ORIGINAL_KEY = `
import sys, json, os, socket, hashlib, base64
from datetime import datetime, timezone
from cryptography.fernet import Fernet
f = Fernet(base64.urlsafe_b64encode(hashlib.sha256(socket.gethostname().encode()).digest()))
d = json.load(sys.stdin)
def write(path, data):
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)
`;

/** Writes `.secrets/credentials.json` the way the original tool does. */
export const ORIGINAL_CREDENTIALS_JSON = ORIGINAL_KEY + `
creds = {}
for i, e in d["entries"].items():
    if e.get("plain"):
        creds[i] = {"username": e["username"], "password": e["password"], "encrypted": False}
    else:
        creds[i] = {"username": e["username"], "password": f.encrypt(e["password"].encode()).decode(), "encrypted": True}
write(d["path"], json.dumps(creds, indent=2).encode())
`;

/** Writes `.secrets/vault.json.enc` the way the original tool does: encrypted twice. */
export const ORIGINAL_VAULT = ORIGINAL_KEY + `
now = datetime.now(timezone.utc).isoformat()
creds = {}
for i, e in d["entries"].items():
    creds[i] = {
        "username": f.encrypt(e["username"].encode()).decode(),
        "password": f.encrypt(e["password"].encode()).decode(),
        "metadata": {"created_at": now, "updated_at": now, "description": "test"},
    }
write(d["path"], f.encrypt(json.dumps({"version": "1.0.0", "credentials": creds}).encode()))
`;

/** One entry as the scripts take it. */
export interface PyEntry {
  username: string;
  password: string;
  plain?: boolean;
}
