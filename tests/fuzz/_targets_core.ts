/**
 * Fuzz targets of the core: message frames and codecs (`src/transport`), handshake records,
 * messages and both state machines (`src/handshake`), key and peer id encodings
 * (`src/identity`), and the QUIC header parsing and retry tokens the endpoint applies to every
 * datagram (`src/quic`).
 *
 * @module
 */

import {
  decodeMessage,
  encodeFrame,
  encodeMessage,
  FrameDecoder,
} from "../../src/transport/codec.ts";
import {
  decodeControl,
  decodeLaneFrame,
  decodeLaneHeader,
  decodeRequest,
  decodeResponse,
  encodeAckedMessage,
  encodeControl,
  encodeLaneHeader,
  encodeRequest,
  encodeResponse,
} from "../../src/transport/_frames.ts";
import { encodeRecord, RecordDecoder } from "../../src/handshake/record.ts";
import {
  CONFIRMATION_LENGTH,
  decodeAlert,
  decodeClientFinish,
  decodeClientHello,
  decodeHelloRetry,
  decodeResumedServerHello,
  decodeServerHello,
  encodeAlert,
  encodeClientFinish,
  encodeClientHello,
  encodeHelloRetry,
  encodeResumedServerHelloConfirmedPart,
  encodeServerHello,
  encodeServerHelloConfirmedPart,
  HANDSHAKE_VERSION,
  MessageType,
  ML_KEM768_CIPHERTEXT_LENGTH,
  Mode,
  NONCE_LENGTH,
} from "../../src/handshake/_messages.ts";
import { FrameCipher } from "../../src/handshake/frame_cipher.ts";
import {
  HandshakeDialer,
  HandshakeListener,
  type HandshakeResult,
} from "../../src/handshake/handshake.ts";
import { PeerCertificateCache } from "../../src/handshake/node_credentials.ts";
import { SessionTicketStore } from "../../src/handshake/session_tickets.ts";
import { sealEarlyData } from "../../src/handshake/_transcript.ts";
import type { TicketSecret } from "../../src/handshake/session_tickets.ts";
import { toHex } from "../../src/_bytes.ts";
import { NetworkError } from "../../src/errors.ts";
import { PublicIdentity } from "../../src/identity/public_identity.ts";
import { PeerId } from "../../src/identity/peer_id.ts";
import { parseLongHeader } from "../../src/quic/_packet.ts";
import { RetryTokens } from "../../src/quic/retry_token.ts";
import {
  dialerIdentity,
  dialerNode,
  listenerIdentity,
  listenerNode,
  pairOptions,
  seededRandom,
} from "../handshake/_util.ts";
import type { Prng } from "../_prng.ts";
import { type FuzzTarget, InvariantError } from "./_campaign.ts";

const text = new TextEncoder();

/** Splits `input` into 1-4 chunks at positions chosen by `rng`. */
function chunks(input: Uint8Array, rng: Prng): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  const parts = rng.int(1, 4);
  for (let i = 1; i < parts && at < input.byteLength; i++) {
    const end = rng.int(at, input.byteLength);
    out.push(input.slice(at, end));
    at = end;
  }
  out.push(input.slice(at));
  return out;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new InvariantError(what);
}

/**
 * The other side takes the message one side accepted (`finish`) and must end with the same
 * transcript as `accepted`: its refusal is a finding (`refused`), not an expected error.
 */
async function otherSideAgrees(
  finish: () => Promise<HandshakeResult | undefined>,
  accepted: HandshakeResult,
  why: { refused: string; differs: string },
): Promise<void> {
  let done: HandshakeResult | undefined;
  try {
    done = await finish();
  } catch (e) {
    throw new InvariantError(`${why.refused}: ${e}`);
  }
  check(done?.transcriptHash.join() === accepted.transcriptHash.join(), why.differs);
}

const messageSeeds = () => [
  encodeMessage({ type: "vertex", data: text.encode("vertex payload") }),
  encodeMessage({ type: "consensus", data: new Uint8Array(40).fill(7) }),
  encodeMessage({ type: "ping", timestamp: 1_700_000_000_000 }),
  encodeMessage({ type: "pong", timestamp: -0 }),
  encodeMessage({ type: "unknown", code: 200, data: new Uint8Array([1, 2, 3]) }),
];

const controlSeeds = () => [
  encodeControl({ type: "ready", incarnation: 0x1234_5678_9abc_def0n }),
  encodeControl({
    type: "open",
    replace: true,
    generation: 7,
    incarnation: 9n,
    lineage: "0123456789abcdef",
  }),
  encodeControl({
    type: "open",
    replace: false,
    generation: 0,
    incarnation: 9n,
    lastHeld: "fedcba9876543210",
  }),
  encodeControl({
    type: "open",
    replace: false,
    generation: 0,
    incarnation: 9n,
    lastHeld: "fedcba9876543210",
    dial: 2 ** 40 + 3,
    alone: true,
  }),
  encodeControl({
    type: "open",
    replace: true,
    generation: 8,
    incarnation: 9n,
    lineage: "0123456789abcdef",
    dial: 12,
  }),
  encodeControl({ type: "drained" }),
  encodeControl({ type: "ack", lane: 2, count: 2 ** 40 + 5 }),
  encodeControl({ type: "ping", id: 0xfffffffe }),
  encodeControl({ type: "pong", id: 1 }),
];

/**
 * Seeds of the handshake targets: messages of the exact layout with fixed bytes where a real
 * handshake has random ones (nonces, ML-KEM ciphertexts, key confirmations). A real run's
 * messages differ in every process (WebCrypto's ML-KEM draws its own randomness), and the
 * same campaign seed must give the same inputs. Both modes share every field but the mode byte.
 */
const fixedBytes = seededRandom("fuzz/handshake");
const SEED_CLIENT_HELLO_FIELDS = {
  version: HANDSHAKE_VERSION,
  nonce: fixedBytes(NONCE_LENGTH),
  cipherText: fixedBytes(ML_KEM768_CIPHERTEXT_LENGTH),
};
const SEED_SERVER_HELLO_FIELDS = {
  version: HANDSHAKE_VERSION,
  nonce: fixedBytes(NONCE_LENGTH),
  cipherText: fixedBytes(ML_KEM768_CIPHERTEXT_LENGTH),
};
const SEED_CONFIRMATION = fixedBytes(CONFIRMATION_LENGTH);

function modeOf(pq: boolean): number {
  return pq ? Mode.PqEncryption : Mode.AuthOnly;
}

function clientHelloSeed(pq: boolean): Uint8Array {
  return encodeClientHello({ ...SEED_CLIENT_HELLO_FIELDS, mode: modeOf(pq) });
}

function serverHelloSeed(pq: boolean): Uint8Array {
  const confirmedPart = encodeServerHelloConfirmedPart({
    ...SEED_SERVER_HELLO_FIELDS,
    mode: modeOf(pq),
  });
  return encodeServerHello(confirmedPart, SEED_CONFIRMATION);
}

const CLIENT_FINISH_SEED = encodeClientFinish(SEED_CONFIRMATION);

/**
 * Resumption: a fixed pair of tickets stands in for the pair a full handshake leaves, so that
 * an input costs no full handshake and the seeds carry the real ticket id and sealed early data
 * (the binder, over this run's certificates, is fixed bytes in a seed like the ciphertext).
 */
const resumptionBytes = seededRandom("fuzz/resumption");
const RESUMPTION_TICKETS = {
  /** Presented by the dialer: the listener holds it for the dialer's run. */
  toListener: { id: resumptionBytes(16), secret: resumptionBytes(32) },
  /** The other direction's, held by both as a session leaves it. */
  toDialer: { id: resumptionBytes(16), secret: resumptionBytes(32) },
};
const EARLY_DATA = text.encode("the dialer's open frame");
/** The options of the resuming pair: its dialer's first random bytes are its nonce. */
const resumingOptions = (pq: boolean) => pairOptions(pq, "fuzz/resumption");

function resumingClientHelloSeed(pq: boolean): Uint8Array {
  const nonce = resumingOptions(pq).dialer.randomBytes(NONCE_LENGTH);
  const { id, secret } = RESUMPTION_TICKETS.toListener;
  return encodeClientHello({
    ...SEED_CLIENT_HELLO_FIELDS,
    mode: modeOf(pq),
    nonce,
    cipherText: new Uint8Array(0), // left out when resuming
    resumption: {
      ticketId: id,
      earlyData: sealEarlyData(secret, nonce, EARLY_DATA),
      binder: SEED_CONFIRMATION,
    },
  });
}

function resumedServerHelloSeed(pq: boolean): Uint8Array {
  const confirmedPart = encodeResumedServerHelloConfirmedPart(HANDSHAKE_VERSION, modeOf(pq));
  return encodeServerHello(confirmedPart, SEED_CONFIRMATION);
}

/** Seeds of every handshake message target: all messages of both modes and an alert. */
const handshakeSeeds = () => [
  encodeAlert("refused: mode mismatch"),
  ...[false, true].flatMap((pq) => [
    clientHelloSeed(pq),
    serverHelloSeed(pq),
    resumingClientHelloSeed(pq),
    resumedServerHelloSeed(pq),
  ]),
  CLIENT_FINISH_SEED,
  encodeHelloRetry(),
  // A ClientHello with the dialer's certificate, as a transport's dialer sends it.
  encodeClientHello({
    version: HANDSHAKE_VERSION,
    mode: Mode.PqEncryption,
    nonce: new Uint8Array(32),
    cipherText: new Uint8Array(1088),
    certificate: dialerNode.certificate.der,
  }),
];

/** Whether a mutated hello asks for pqEncryption: the side under test then agrees with it. */
function asksForPq(hello: Uint8Array): boolean {
  return hello[2] === Mode.PqEncryption;
}

/**
 * One node's cache of verified certificates, shared by every handshake of a campaign as a
 * transport shares its own: the certificates are always the same two, so each input costs the
 * ML-KEM operations and no hybrid verification.
 */
const certificateCache = new PeerCertificateCache({ maxEntries: 2 });

/** A fresh dialer and listener that see each other's certificates. */
function handshakePair(pq: boolean) {
  const o = pairOptions(pq, "fuzz");
  return {
    dialer: new HandshakeDialer({ ...o.dialer, certificateCache }),
    listener: new HandshakeListener({ ...o.listener, certificateCache }),
  };
}

/**
 * A dialer and a listener whose stores hold {@linkcode RESUMPTION_TICKETS} (copies: a used
 * ticket's secret is zeroed), so the dialer resumes.
 */
function resumingPair(pq: boolean) {
  const copy = (t: TicketSecret) => ({ id: t.id.slice(), secret: t.secret.slice() });
  const { toListener, toDialer } = RESUMPTION_TICKETS;
  const mode = modeOf(pq);
  const dialerTickets = new SessionTicketStore({ maxPeers: 1 });
  dialerTickets.save(toHex(listenerNode.certificateHash), mode, copy(toListener), copy(toDialer));
  const listenerTickets = new SessionTicketStore({ maxPeers: 1 });
  listenerTickets.save(toHex(dialerNode.certificateHash), mode, copy(toDialer), copy(toListener));
  const o = resumingOptions(pq);
  return {
    dialer: new HandshakeDialer({ ...o.dialer, certificateCache, tickets: dialerTickets }),
    listener: new HandshakeListener({ ...o.listener, certificateCache, tickets: listenerTickets }),
  };
}

/**
 * `input` read as a change to `seed`, applied to `live`, this run's valid message of the same
 * kind: where the input has the seed's byte it gets the live one, elsewhere the live byte with
 * the same bits flipped. So a seed as it is stays valid although no fixed bytes could be (every
 * handshake encapsulates afresh), and a mutation reaches the key confirmation check as the same
 * mutation of a valid message.
 */
function rebase(input: Uint8Array, seed: Uint8Array, live: Uint8Array): Uint8Array {
  const out = input.slice();
  const common = Math.min(out.byteLength, seed.byteLength, live.byteLength);
  for (let i = 0; i < common; i++) out[i] ^= seed[i] ^ live[i];
  return out;
}

const MAX_FRAME_BODY = 4096;
const RECORD_MAX = 16384;

/** The targets of `src/transport`, `src/handshake`, `src/identity` and `src/quic`. */
export const coreTargets: FuzzTarget[] = [
  {
    name: "transport/message",
    maxInputBytes: 512,
    seeds: messageSeeds,
    run(input) {
      const m = decodeMessage(input);
      // What decodes must encode back to the same bytes (a ping/pong's NaN payloads aside).
      if (m.type !== "ping" && m.type !== "pong") {
        check(encodeMessage(m).join() === input.join(), "decode/encode round trip differs");
      }
    },
  },
  {
    name: "transport/frame-decoder",
    maxInputBytes: 3 * MAX_FRAME_BODY,
    seeds: () => messageSeeds().map(encodeFrame).concat([encodeFrame(new Uint8Array(4096))]),
    run(input, rng) {
      const decoder = new FrameDecoder(MAX_FRAME_BODY);
      let total = 0;
      for (const chunk of chunks(input, rng)) {
        for (const body of decoder.push(chunk)) {
          check(body.byteLength <= MAX_FRAME_BODY, `body of ${body.byteLength} bytes`);
          total += 4 + body.byteLength;
        }
        check(decoder.buffered <= input.byteLength - total, "buffers more than it was given");
      }
      decoder.end();
    },
  },
  {
    name: "transport/control",
    maxInputBytes: 64,
    seeds: controlSeeds,
    run(input) {
      const frame = decodeControl(input);
      if (frame !== undefined) {
        check(encodeControl(frame).join() === input.join(), "control round trip differs");
      }
    },
  },
  {
    name: "transport/lane-frame",
    maxInputBytes: 128,
    seeds: () =>
      messageSeeds().map((m, i) =>
        i % 2 === 0 ? m : encodeAckedMessage([{ lane: i % 3, count: 2 ** 40 + i }], m)
      ),
    run(input) {
      const { acks, message } = decodeLaneFrame(input);
      check(acks.length <= 3, `${acks.length} acknowledgements`);
      if (acks.length > 0) {
        check(encodeAckedMessage(acks, message).join() === input.join(), "round trip differs");
      }
      decodeMessage(message);
    },
  },
  {
    name: "transport/lane-header",
    maxInputBytes: 8,
    seeds: () => [0, 1, 2].map(encodeLaneHeader),
    run(input) {
      const lane = decodeLaneHeader(input);
      check(encodeLaneHeader(lane).join() === input.join(), "lane header round trip differs");
    },
  },
  {
    name: "transport/request",
    maxInputBytes: 600,
    seeds: () => [
      encodeRequest(text.encode("/cretoai/kad/1"), new Uint8Array([1, 2, 3])),
      encodeRequest(text.encode("/x/ünïcode"), new Uint8Array(0)),
    ],
    run(input) {
      const { protocolId, request } = decodeRequest(input);
      check(
        encodeRequest(text.encode(protocolId), request).join() === input.join(),
        "request round trip differs",
      );
    },
  },
  {
    name: "transport/response",
    maxInputBytes: 64,
    seeds: () => [encodeResponse(new Uint8Array([9, 9])), encodeResponse(new Uint8Array(0))],
    run: (input) => decodeResponse(input),
  },
  {
    name: "transport/sealed-frame",
    maxInputBytes: 256,
    quickInputs: 300,
    seeds: async () => {
      // Each the first frame of its sealer: a fresh receiver expects frame 0.
      const first = async (body: Uint8Array) =>
        await (await FrameCipher.create(cipherKeys(false))).seal(body);
      return [await first(text.encode("hello")), await first(new Uint8Array(0))];
    },
    async run(input) {
      // A fresh receiver each time: the first frame it accepts must be the sealer's first.
      const opener = await FrameCipher.create(cipherKeys(true));
      await opener.open(input);
    },
  },
  {
    name: "handshake/record-decoder",
    maxInputBytes: 3 * 1024,
    seeds: () => [
      encodeRecord(new Uint8Array([1, 2, 3])),
      new Uint8Array([...encodeRecord(new Uint8Array(10)), ...encodeRecord(new Uint8Array(0))]),
    ],
    run(input, rng) {
      const decoder = new RecordDecoder({ maxSize: 1024 });
      let used = 0;
      for (const chunk of chunks(input, rng)) {
        for (const record of decoder.push(chunk)) {
          check(record.byteLength <= 1024, `record of ${record.byteLength} bytes`);
          used += 4 + record.byteLength;
        }
      }
      const rest = decoder.takeRemaining();
      check(used + rest.byteLength === input.byteLength, "bytes lost or invented");
      decoder.end();
    },
  },
  {
    name: "handshake/messages",
    maxInputBytes: RECORD_MAX,
    seeds: handshakeSeeds,
    run(input) {
      // Every decoder sees every input: a type byte must not be trusted to pick one.
      for (
        const decode of [
          decodeClientHello,
          decodeServerHello,
          decodeResumedServerHello,
          decodeHelloRetry,
          decodeClientFinish,
          decodeAlert,
        ]
      ) {
        try {
          decode(input);
        } catch (e) {
          if (!(e instanceof NetworkError)) throw e;
        }
      }
    },
  },
  {
    name: "handshake/listener",
    maxInputBytes: RECORD_MAX,
    quickInputs: 100,
    seeds: () => [clientHelloSeed(false), clientHelloSeed(true)],
    async run(input) {
      // A listener that gets its first message: what parses reaches the certificate check, the
      // decapsulation, the encapsulation to the dialer and the key schedule.
      const { listener } = handshakePair(asksForPq(input));
      const step = await listener.receive(input);
      check(step.done === undefined, "the listener finished on a ClientHello");
      check(
        step.send !== undefined && decodeServerHello(step.send).mode === input[2],
        "the listener answered a ClientHello with no ServerHello of its mode",
      );
    },
  },
  {
    name: "handshake/dialer",
    maxInputBytes: RECORD_MAX,
    quickInputs: 100,
    seeds: () => [serverHelloSeed(false), serverHelloSeed(true)],
    async run(input) {
      // A started dialer gets the listener's reply: the input rebased on this run's real
      // ServerHello, so mutations reach the decapsulation and the key confirmation check.
      const pq = asksForPq(input);
      const { dialer, listener } = handshakePair(pq);
      const live = await listener.receive(await dialer.start());
      const step = await dialer.receive(rebase(input, serverHelloSeed(pq), live.send!));
      // What the dialer accepted must be what the listener sent: the listener agrees.
      await otherSideAgrees(async () => (await listener.receive(step.send!)).done, step.done!, {
        refused: "the dialer accepted a ServerHello the listener refuses",
        differs: "the dialer and the listener finished with different transcripts",
      });
    },
  },
  {
    name: "handshake/listener-finish",
    maxInputBytes: RECORD_MAX,
    quickInputs: 100,
    seeds: () => [CLIENT_FINISH_SEED],
    async run(input, rng) {
      // A listener past the ClientHello gets the dialer's finish: the input rebased on this
      // run's real ClientFinish, so mutations reach the key confirmation check.
      const { dialer, listener } = handshakePair(rng.next() < 0.5);
      const serverHello = (await listener.receive(await dialer.start())).send!;
      const live = (await dialer.receive(serverHello)).send!;
      const { done } = await listener.receive(rebase(input, CLIENT_FINISH_SEED, live));
      check(
        done !== undefined && done.peerId.equals(dialerNode.identity.peerId),
        "the listener finished without the dialer's peer id",
      );
    },
  },
  {
    name: "handshake/resumed-hello",
    maxInputBytes: 128,
    seeds: () => [false, true].map(resumedServerHelloSeed),
    run(input) {
      const hello = decodeResumedServerHello(input);
      const again = encodeServerHello(
        encodeResumedServerHelloConfirmedPart(hello.version, hello.mode),
        hello.confirmation,
      );
      check(again.join() === input.join(), "ResumedServerHello round trip differs");
      check(hello.confirmedPart.join() === input.subarray(0, 3).join(), "confirmed part differs");
    },
  },
  {
    name: "handshake/listener-resume",
    maxInputBytes: RECORD_MAX,
    quickInputs: 200,
    seeds: () => [false, true].map(resumingClientHelloSeed),
    async run(input) {
      // A listener that holds the ticket gets a resuming ClientHello: the input rebased on this
      // run's real one, so mutations reach the binder and early data checks (and an unknown
      // ticket a HelloRetry, a plain hello the full handshake).
      const pq = asksForPq(input);
      const { dialer, listener } = resumingPair(pq);
      const live = await dialer.start(() => EARLY_DATA);
      const hello = rebase(input, resumingClientHelloSeed(pq), live);
      const step = await listener.receive(hello);
      if (step.done === undefined) {
        if (step.send?.[0] === MessageType.HelloRetry) {
          check(
            decodeClientHello(hello).cipherText.byteLength === 0,
            "the listener asked for a full ClientHello it already had",
          );
          return;
        }
        check(
          step.send?.[0] === MessageType.ServerHello &&
            decodeServerHello(step.send).mode === hello[2],
          "the listener answered a ClientHello with neither resumption, a HelloRetry nor a ServerHello of its mode",
        );
        return;
      }
      check(
        hello.join() === live.join(),
        "the listener resumed a ClientHello the dialer never sent",
      );
      check(
        step.done.resumed && step.done.earlyData?.join() === EARLY_DATA.join(),
        "the resumed listener returned other early data than the dialer sealed",
      );
      await otherSideAgrees(async () => (await dialer.receive(step.send!)).done, step.done, {
        refused: "the listener resumed a session the dialer refuses",
        differs: "the dialer and the listener resumed with different transcripts",
      });
    },
  },
  {
    name: "handshake/dialer-resume",
    maxInputBytes: RECORD_MAX,
    quickInputs: 200,
    seeds: () => [false, true].map(resumedServerHelloSeed),
    async run(input) {
      // A dialer that offered a ticket gets the listener's reply: the input rebased on this
      // run's real ResumedServerHello, so mutations reach the mode and confirmation checks.
      const pq = asksForPq(input);
      const { dialer, listener } = resumingPair(pq);
      const live = await listener.receive(await dialer.start(() => EARLY_DATA));
      const reply = rebase(input, resumedServerHelloSeed(pq), live.send!);
      const { done } = await dialer.receive(reply);
      check(
        reply.join() === live.send!.join() && done!.resumed &&
          done!.transcriptHash.join() === live.done!.transcriptHash.join(),
        "the dialer accepted a ResumedServerHello the listener did not send",
      );
    },
  },
  {
    name: "identity/public-identity",
    maxInputBytes: 4096,
    seeds: () => [dialerIdentity.publicIdentity.encode(), listenerIdentity.publicIdentity.encode()],
    run(input) {
      const keys = PublicIdentity.decode(input);
      check(keys.encode().join() === input.join(), "public identity round trip differs");
    },
  },
  {
    name: "identity/peer-id",
    maxInputBytes: 80,
    seeds: () => [text.encode(dialerIdentity.peerId.toString()), dialerIdentity.peerId.toBytes()],
    run(input) {
      const asText = new TextDecoder().decode(input);
      const parse = () => {
        check(PeerId.parse(asText).toString() === asText, "peer id round trip differs");
      };
      for (const decode of [parse, () => PeerId.fromBytes(input)]) {
        try {
          decode();
        } catch (e) {
          if (!(e instanceof NetworkError)) throw e;
        }
      }
    },
  },
  {
    name: "quic/long-header",
    maxInputBytes: 1400,
    seeds: () => [longHeaderSeed()],
    run(input) {
      const h = parseLongHeader(input);
      if (h === undefined) return;
      check(
        7 + h.dcid.byteLength + h.scid.byteLength <= input.byteLength,
        "header fields run past the datagram",
      );
    },
  },
  {
    name: "quic/retry-token",
    maxInputBytes: 128,
    seeds: () => [RETRY_TOKEN],
    run(input) {
      const odcid = retryTokens.validate(input, RETRY_CLIENT, 2_000);
      // Only a token this endpoint minted validates: a mutation that passes is a forgery.
      if (odcid !== undefined) {
        check(input.join() === RETRY_TOKEN.join(), "a mutated retry token validated");
      }
    },
  },
];

const RETRY_CLIENT = { hostname: "127.0.0.1", port: 4242 };
const retryTokens = new RetryTokens({ key: new Uint8Array(32).fill(9) });
const RETRY_TOKEN = retryTokens.mint(RETRY_CLIENT, new Uint8Array(20).fill(3), 1_000);

function cipherKeys(receiver: boolean) {
  const a = new Uint8Array(32).fill(1);
  const b = new Uint8Array(32).fill(2);
  return receiver ? { send: b, recv: a } : { send: a, recv: b };
}

/** A QUIC v1 Initial's invariant header: 20-byte DCID, 8-byte SCID, then padding. */
function longHeaderSeed(): Uint8Array {
  const out = new Uint8Array(1200);
  out.set([0xc0, 0, 0, 0, 1, 20], 0);
  out.fill(0xaa, 6, 26);
  out.set([8], 26);
  out.fill(0xbb, 27, 35);
  return out;
}
