/**
 * RFC 4648 base32, lowercase alphabet, no padding. Used for peer ids because it survives DNS
 * labels, file names and case-insensitive channels, and has no look-alike characters to argue
 * about (unlike base58, it needs no big-integer arithmetic).
 *
 * @module
 */

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";

/** Encodes bytes as lowercase base32 without padding. */
export function encodeBase32(bytes: Uint8Array): string {
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const byte of bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(acc << (5 - bits)) & 31];
  return out;
}

/**
 * Decodes lowercase unpadded base32. Returns a reason string instead of throwing, so the caller
 * can phrase the error for what it was parsing. Non-zero trailing bits are refused so that every
 * value has exactly one string form.
 */
export function decodeBase32(text: string): Uint8Array | string {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let acc = 0;
  let bits = 0;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const v = ALPHABET.indexOf(text[i]);
    if (v < 0) return `character ${JSON.stringify(text[i])} at index ${i} is not in a-z2-7`;
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >>> bits) & 0xff;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits >= 5 || acc !== 0) return "it is not a canonical base32 string (stray trailing bits)";
  return out;
}
