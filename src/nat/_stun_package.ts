// The message codec of npm `stun`, imported from the package's internal modules: its index also
// loads its client (`net/request.js`), which loads npm `debug`, which enumerates the environment
// at import, so importing the index would make every user of this module need --allow-env.
// npm `stun` ships no types: the part used here is typed below.
import type { Buffer } from "node:buffer";
import { createMessage } from "stun/src/node_modules/lib/create-message.js";
import encode from "stun/src/node_modules/message/encode.js";
import decode from "stun/src/node_modules/message/decode.js";

/** A STUN message being built (npm `stun`'s `StunRequest`). */
export interface StunMessageBuilder {
  addAttribute(type: number, ...values: unknown[]): void;
  addMessageIntegrity(key: Buffer): void;
  addFingerprint(): void;
}

/** A decoded STUN message (npm `stun`'s `StunResponse`). */
export interface StunPackageResponse {
  getAttribute(type: number): { value: unknown } | undefined;
}

/** The part of npm `stun` this module uses. */
export const stun: {
  createMessage(type: number, transactionId?: Buffer): StunMessageBuilder;
  encode(message: StunMessageBuilder): Buffer;
  decode(data: Buffer): StunPackageResponse;
} = { createMessage, encode, decode };
