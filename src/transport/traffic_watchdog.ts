/**
 * A watchdog over a connection's QUIC counters, without I/O: it closes a peer whose packets
 * grow without useful traffic. quiche 0.18 keeps frames a peer elicits (PATH_RESPONSE,
 * RETIRE_CONNECTION_ID, out-of-order CRYPTO data) in queues without a bound
 * (CVE-2023-6193, CVE-2024-1410, CVE-2024-1765); the attacks send many small frames and
 * withhold acknowledgements. Neither the queues nor the frames are visible from JavaScript,
 * but their traces are: bytes received that carry no application data, and most of our
 * packets declared lost.
 *
 * @module
 */

import { requireInteger, requirePositive } from "../_validate.ts";

/** One reading of a connection's counters, each a total since the connection started. */
export interface TrafficSample {
  /** Bytes of QUIC packets received (quiche's count). */
  bytesReceived: number;
  /** Bytes of application data received: messages, requests, responses, control frames. */
  usefulBytesReceived: number;
  /** Bytes of QUIC packets sent: what the peer acknowledges. */
  bytesSent: number;
  /** QUIC packets sent. */
  packetsSent: number;
  /** QUIC packets declared lost. */
  packetsLost: number;
}

/** Options of {@linkcode TrafficWatchdog}. */
export interface TrafficWatchdogOptions {
  /**
   * Bytes received in one interval beyond the useful ones that are always allowed (QUIC
   * keep-alives and acknowledgements take a few hundred bytes).
   * @default {262144} 256 KiB.
   */
  overheadAllowanceBytes?: number;
  /**
   * Overhead allowed per useful byte received in one interval, above the allowance.
   * @default {1}
   */
  overheadRatio?: number;
  /**
   * Overhead allowed per byte sent in one interval: the peer's acknowledgements of what
   * this node sends (about 50 bytes per two 1350-byte packets).
   * @default {0.25}
   */
  ackRatio?: number;
  /**
   * Share of our packets declared lost in one interval that counts as acknowledgements
   * withheld, when at least `minPacketsForLoss` were sent.
   * @default {0.5}
   */
  maxLossRatio?: number;
  /**
   * Packets sent in one interval below which loss is not judged.
   * @default {200}
   */
  minPacketsForLoss?: number;
  /**
   * Consecutive suspicious intervals after which the connection is to be closed.
   * @default {3}
   */
  strikes?: number;
}

/** What {@linkcode TrafficWatchdog.check} concluded. */
export type WatchdogVerdict =
  | { close: false }
  | {
    /** Close the connection. */
    close: true;
    /** Why, with the figures. */
    reason: string;
  };

/**
 * Judges a connection from samples of its counters taken at regular intervals.
 *
 * @example A peer that sends 1 MiB of frames without data every interval
 * ```ts
 * import { TrafficWatchdog } from "@cretoai/network/transport";
 *
 * const watchdog = new TrafficWatchdog();
 * let received = 0;
 * const sample = { bytesReceived: 0, usefulBytesReceived: 0, bytesSent: 0, packetsSent: 0, packetsLost: 0 };
 * let verdict = watchdog.check(sample);
 * for (let i = 0; i < 3; i++) {
 *   received += 1024 * 1024;
 *   verdict = watchdog.check({ ...sample, bytesReceived: received });
 * }
 * console.assert(verdict.close);
 * ```
 */
export class TrafficWatchdog {
  readonly #allowance: number;
  readonly #ratio: number;
  readonly #ackRatio: number;
  readonly #maxLoss: number;
  readonly #minPackets: number;
  readonly #strikesToClose: number;
  #last: TrafficSample | undefined;
  #strikes = 0;

  /**
   * Creates a watchdog with no sample yet.
   *
   * @param options Thresholds.
   * @throws {InvalidConfigError} for a threshold that is not positive.
   */
  constructor(options: TrafficWatchdogOptions = {}) {
    const {
      overheadAllowanceBytes = 256 * 1024,
      overheadRatio = 1,
      ackRatio = 0.25,
      maxLossRatio = 0.5,
      minPacketsForLoss = 200,
      strikes = 3,
    } = options;
    requirePositive("overheadAllowanceBytes", overheadAllowanceBytes);
    requirePositive("overheadRatio", overheadRatio);
    requirePositive("ackRatio", ackRatio);
    requirePositive("maxLossRatio", maxLossRatio);
    requireInteger("minPacketsForLoss", minPacketsForLoss, 1);
    requireInteger("strikes", strikes, 1);
    this.#allowance = overheadAllowanceBytes;
    this.#ratio = overheadRatio;
    this.#ackRatio = ackRatio;
    this.#maxLoss = maxLossRatio;
    this.#minPackets = minPacketsForLoss;
    this.#strikesToClose = strikes;
  }

  /**
   * Takes the next sample (one per interval) and says whether to close the connection.
   *
   * @param sample The counters now.
   * @returns The verdict; the first sample only sets the baseline.
   */
  check(sample: TrafficSample): WatchdogVerdict {
    const last = this.#last;
    this.#last = { ...sample };
    if (last === undefined) return { close: false };
    const useful = sample.usefulBytesReceived - last.usefulBytesReceived;
    const overhead = sample.bytesReceived - last.bytesReceived - useful;
    const sentBytes = sample.bytesSent - last.bytesSent;
    const sent = sample.packetsSent - last.packetsSent;
    const lost = sample.packetsLost - last.packetsLost;
    let suspicion: string | undefined;
    if (overhead > this.#allowance + useful * this.#ratio + sentBytes * this.#ackRatio) {
      suspicion = `${overhead} bytes received without data next to ${useful} bytes of data`;
    } else if (sent >= this.#minPackets && lost > sent * this.#maxLoss) {
      suspicion = `${lost} of ${sent} packets sent declared lost`;
    }
    if (suspicion === undefined) {
      this.#strikes = 0;
      return { close: false };
    }
    if (++this.#strikes < this.#strikesToClose) return { close: false };
    return { close: true, reason: `${this.#strikes} intervals in a row: ${suspicion}` };
  }
}
