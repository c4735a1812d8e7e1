/**
 * Bech32 (BIP-173) decoding with the checksum checked: the encoding of age's keys. It lets the
 * config and identity-file checks tell a valid key from a mistyped one without loading the age
 * package, which a backup without encryption never needs.
 *
 * @module
 */

const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
const CHECKSUM_WORDS = 6;

function polymod(values: readonly number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GENERATOR[i];
  }
  return chk;
}

function expandPrefix(prefix: string): number[] {
  const codes = [...prefix].map((c) => c.charCodeAt(0));
  return [...codes.map((c) => c >>> 5), 0, ...codes.map((c) => c & 31)];
}

/**
 * The bytes a Bech32 string carries when its prefix is `prefix` (any case) and its checksum is
 * right; else `undefined`. Mixed case is refused (BIP-173); the 90-character limit is not applied,
 * as age does not apply it. Leftover bits must be fewer than 8 and zero, as the encoder writes them.
 */
export function bech32Bytes(s: string, prefix: string): Uint8Array | undefined {
  // Printable ASCII only, before any case change: "\u212a" (Kelvin sign) lowercases to "k".
  if (!/^[\x21-\x7e]*$/.test(s)) return undefined;
  if (s !== s.toLowerCase() && s !== s.toUpperCase()) return undefined;
  const text = s.toLowerCase();
  const sep = text.lastIndexOf("1");
  if (sep < 1 || text.slice(0, sep) !== prefix.toLowerCase()) return undefined;
  const words: number[] = [];
  for (const c of text.slice(sep + 1)) {
    const w = CHARSET.indexOf(c);
    if (w < 0) return undefined;
    words.push(w);
  }
  if (words.length < CHECKSUM_WORDS) return undefined;
  if (polymod([...expandPrefix(text.slice(0, sep)), ...words]) !== 1) return undefined;
  return fromWords(words.slice(0, -CHECKSUM_WORDS));
}

function fromWords(words: readonly number[]): Uint8Array | undefined {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const w of words) {
    acc = (acc << 5) | w;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >>> bits) & 0xff);
    }
    acc &= (1 << bits) - 1;
  }
  if (bits >= 5 || acc !== 0) return undefined;
  return Uint8Array.from(out);
}
