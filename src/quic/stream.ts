/**
 * QUIC streams: ordered byte streams within a connection, with flow control both ways.
 *
 * @module
 */
import { NetworkError, StreamResetError } from "../errors.ts";
import type { QuicheConnection } from "./_quiche.ts";
import { Shutdown } from "./_quiche.ts";
import { setImmediate } from "node:timers";
import { concatBytes } from "../_bytes.ts";

/** What a stream needs from its connection. @internal */
export interface StreamHost {
  /** Whether this side accepted the connection (server-initiated stream ids are odd). */
  readonly isServer: boolean;
  /** A buffer to read into; its contents are copied out before the next use. */
  readonly scratch: Uint8Array;
  /** The error every operation fails with once the connection is gone. */
  readonly closedError: Error | undefined;
  /** Asks for a flush of the connection in this event-loop turn. */
  schedule(): void;
  /** Flushes the connection now (outside of a flush). */
  flushNow(): void;
  /** Asks for a flush after this event-loop turn's application work. */
  scheduleAfterTurn(): void;
  /** The stream has data to write that quiche did not take yet. */
  wantsWrite(stream: QuicStream): void;
  /** The stream waits for data. */
  wantsRead(stream: QuicStream): void;
  /** Both directions are finished: forget the stream. */
  finished(stream: QuicStream): void;
}

interface PendingWrite {
  data: Uint8Array;
  fin: boolean;
  resolve: () => void;
  reject: (e: Error) => void;
}

const EMPTY = new Uint8Array(0);
const RESOLVED = Promise.resolve();
const PUSH_BLOCKED = -2;
const PUSH_FAILED = -1;

/**
 * One QUIC stream. Bidirectional streams can be read and written; unidirectional ones only
 * in one direction. Reads pull from the connection only when asked, so a reader that stops
 * reading stops the peer through flow control; writes resolve once the connection has taken
 * the bytes, and wait while flow control is closed.
 *
 * @example A request and its response on one bidirectional stream
 * ```ts
 * import { QuicEndpoint } from "@cretoai/network/quic";
 *
 * await using server = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
 * await using client = await QuicEndpoint.bind({ hostname: "127.0.0.1" });
 * (async () => {
 *   const conn = await server.accept();
 *   const stream = await conn.acceptBidi();
 *   await stream.write(await stream.readAll(), true); // echo
 * })();
 * const conn = await client.connect(server.localAddr);
 * const stream = await conn.openBidi();
 * await stream.write(new TextEncoder().encode("hello"), true);
 * console.assert(new TextDecoder().decode(await stream.readAll()) === "hello");
 * ```
 */
export class QuicStream {
  /** The QUIC stream id. */
  readonly id: number;
  /** True when the first bytes of this peer-opened stream arrived as 0-RTT early data. */
  readonly early: boolean;
  #host: StreamHost;
  #native: QuicheConnection;
  #readWaiter:
    | {
      resolve: (chunk: Uint8Array | null) => void;
      reject: (e: Error) => void;
      into: Uint8Array | undefined;
    }
    | undefined;
  #readFinished: boolean;
  #readError: Error | undefined;
  #writes: PendingWrite[] = [];
  #tail: Uint8Array | undefined;
  #finQueued: boolean;
  #writeFinished: boolean;
  #writeError: Error | undefined;

  /**
   * Streams are made by {@linkcode QuicConnection}: use `openBidi`, `openUni`, `acceptBidi`
   * or `acceptUni`.
   *
   * @param host The connection.
   * @param quiche The connection's quiche state.
   * @param id The stream id.
   * @param early Whether the stream's data arrived as 0-RTT data.
   */
  constructor(host: StreamHost, quiche: QuicheConnection, id: number, early: boolean) {
    this.#host = host;
    this.#native = quiche;
    this.id = id;
    this.early = early;
    const isServer = host.isServer;
    const localInitiated = (id & 1) === (isServer ? 1 : 0);
    const unidirectional = (id & 2) !== 0;
    // A unidirectional stream has only the direction its opener writes.
    this.#readFinished = unidirectional && localInitiated;
    this.#writeFinished = unidirectional && !localInitiated;
    this.#finQueued = this.#writeFinished;
  }

  /** Whether the peer opened this stream. */
  get isRemote(): boolean {
    return (this.id & 1) === (this.#host.isServer ? 0 : 1);
  }

  /** Whether the stream is unidirectional. */
  get isUnidirectional(): boolean {
    return (this.id & 2) !== 0;
  }

  /**
   * Reads the next chunk of data.
   *
   * @param into A buffer to read into instead of a new one (at most its length is read); the
   *   chunk is then a view of it. A large frame read this way makes no garbage.
   * @returns The chunk, or `null` once the peer finished the stream.
   * @throws {StreamResetError} `ERR_STREAM_RESET` when the peer reset the stream.
   * @throws {ConnectionClosedError} when the connection closed.
   */
  read(into?: Uint8Array): Promise<Uint8Array | null> {
    if (this.#readError !== undefined) return Promise.reject(this.#readError);
    if (this.#readFinished) return Promise.resolve(null);
    const closed = this.#host.closedError;
    if (closed !== undefined) return Promise.reject(closed);
    if (this.#readWaiter !== undefined) {
      return Promise.reject(
        new NetworkError("ERR_STREAM_CLOSED", `Cannot read stream ${this.id}: a read is pending`),
      );
    }
    const chunk = this.#pull(into);
    if (chunk !== undefined) return Promise.resolve(chunk);
    if (this.#readError !== undefined) return Promise.reject(this.#readError);
    return new Promise((resolve, reject) => {
      this.#readWaiter = { resolve, reject, into };
      this.#host.wantsRead(this);
    });
  }

  /**
   * Reads until the peer finishes the stream.
   *
   * @param maxBytes Most bytes accepted; more rejects with `ERR_MESSAGE_TOO_LARGE` and
   *   stops the stream.
   * @returns All bytes, concatenated.
   */
  async readAll(maxBytes = 64 * 1024 * 1024): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (let chunk = await this.read(); chunk !== null; chunk = await this.read()) {
      total += chunk.byteLength;
      if (total > maxBytes) {
        this.stopSending(0);
        throw new NetworkError(
          "ERR_MESSAGE_TOO_LARGE",
          `Stream ${this.id} carried more than ${maxBytes} bytes: ${total} so far`,
        );
      }
      chunks.push(chunk);
    }
    return chunks.length === 1 ? chunks[0] : concatBytes(chunks);
  }

  /**
   * Writes bytes; with `fin`, they are the last ones. Resolves once the connection has taken
   * all of them (waiting while flow control is closed). Do not change `data` before then.
   *
   * @param data The bytes.
   * @param fin Whether to finish the stream after them.
   * @throws {StreamResetError} `ERR_STREAM_STOPPED` when the peer asked to stop (STOP_SENDING).
   * @throws {NetworkError} `ERR_STREAM_CLOSED` after the stream was finished or reset.
   */
  write(data: Uint8Array, fin = false): Promise<void> {
    if (this.#writeError !== undefined) return Promise.reject(this.#writeError);
    const closed = this.#host.closedError;
    if (closed !== undefined) return Promise.reject(closed);
    if (this.#finQueued) {
      return Promise.reject(
        new NetworkError("ERR_STREAM_CLOSED", `Cannot write stream ${this.id}: it is finished`),
      );
    }
    if (fin) this.#finQueued = true;
    if (this.#tail !== undefined) {
      data = concatBytes([this.#tail, data]);
      this.#tail = undefined;
    }
    if (this.#writes.length === 0) {
      // The peer already finished its side, so this write is likely a reply followed by a
      // close(): hold its last byte until the end of this event-loop turn so that the FIN
      // can ride on it instead of going alone (see the quiche bug below).
      const hold = !fin && this.#readFinished && !this.isUnidirectional && data.byteLength > 0;
      const now = hold ? data.subarray(0, data.byteLength - 1) : data;
      const taken = this.#push(now, fin);
      if (taken === PUSH_FAILED) return Promise.reject(this.#writeError!);
      if (taken === 0 && fin) {
        // quiche 0.18 drops a bare FIN whose offset is already acknowledged if it processes
        // that ACK before the next send() (cloudflare/quiche#2525): the stream is collected
        // and the peer never sees the end. Sending at once closes that window in practice.
        this.#host.flushNow();
      } else {
        this.#host.schedule();
      }
      if (taken === now.byteLength) {
        if (fin) this.#finishWrite();
        if (hold) {
          this.#tail = data.slice(data.byteLength - 1);
          setImmediate(this.#releaseTail);
        }
        return RESOLVED;
      }
      if (taken > 0) data = data.subarray(taken);
    }
    return new Promise((resolve, reject) => {
      this.#writes.push({ data, fin, resolve, reject });
      this.#host.wantsWrite(this);
    });
  }

  #releaseTail = (): void => {
    const tail = this.#tail;
    if (tail === undefined) return;
    this.#tail = undefined;
    if (this.#writes.length === 0) {
      const taken = this.#push(tail, false);
      if (taken === PUSH_FAILED) return;
      this.#host.schedule();
      if (taken === 1) return;
    }
    this.#writes.push({ data: tail, fin: false, resolve: () => {}, reject: () => {} });
    this.#host.wantsWrite(this);
  };

  /** Finishes the stream (FIN) after the data already written. */
  close(): Promise<void> {
    return this.#finQueued ? RESOLVED : this.write(EMPTY, true);
  }

  /**
   * Abandons sending (RESET_STREAM): the peer's reads fail with `code`.
   *
   * @param code Application error code.
   */
  reset(code = 0): void {
    if (this.#writeFinished && this.#writes.length === 0) return;
    this.#shutdown(Shutdown.Write, code);
    this.#failWrites(
      new NetworkError("ERR_STREAM_CLOSED", `Stream ${this.id} was reset locally (code ${code})`),
    );
  }

  /**
   * Asks the peer to stop sending (STOP_SENDING) and discards what arrives.
   *
   * @param code Application error code.
   */
  stopSending(code = 0): void {
    if (this.#readFinished) return;
    this.#shutdown(Shutdown.Read, code);
    this.#failRead(
      new NetworkError("ERR_STREAM_CLOSED", `Stream ${this.id} was stopped locally (code ${code})`),
    );
  }

  #shutdown(direction: number, code: number): void {
    try {
      this.#native.streamShutdown(this.id, direction, code);
    } catch {
      // Already finished or collected by quiche: nothing left to shut down.
    }
    this.#host.schedule();
  }

  /** Hands data to a waiting reader. Called by the connection when quiche has data. @internal */
  onReadable(): boolean {
    const waiter = this.#readWaiter;
    if (waiter === undefined) return false;
    const chunk = this.#pull(waiter.into);
    if (chunk === undefined) {
      if (this.#readError === undefined) return false;
      this.#readWaiter = undefined;
      waiter.reject(this.#readError);
      return true;
    }
    this.#readWaiter = undefined;
    waiter.resolve(chunk);
    return true;
  }

  /** Retries pending writes. Returns true when none is left. @internal */
  onWritable(): boolean {
    const writes = this.#writes;
    if (writes.length > 0 && writes[0].data.byteLength > 0 && this.#sendCapacity() === 0) {
      return false;
    }
    while (writes.length > 0) {
      const head = writes[0];
      const taken = this.#push(head.data, head.fin);
      if (taken === PUSH_FAILED) return true;
      if (taken !== head.data.byteLength) {
        if (taken > 0) head.data = head.data.subarray(taken);
        return false;
      }
      writes.shift();
      if (head.fin) this.#finishWrite();
      head.resolve();
    }
    return true;
  }

  /** Fails every pending operation: the connection is gone. @internal */
  fail(error: Error): void {
    this.#failRead(error);
    this.#failWrites(error);
  }

  /** The next chunk from quiche: a chunk, null at the end, undefined when there is none yet. */
  #pull(into: Uint8Array | undefined): Uint8Array | null | undefined {
    const host = this.#host;
    let result: [number, boolean] | null;
    try {
      result = this.#native.streamRecv(this.id, into ?? host.scratch);
    } catch (e) {
      this.#readError = streamError(e, this.id);
      this.#readFinished = true;
      this.#maybeFinished();
      return undefined;
    }
    if (result === null) return undefined;
    const [length, fin] = result;
    // Reading frees flow-control credit the peer should hear about, but not before the
    // application had this turn to answer: the update and the ACK then ride on the answer.
    host.scheduleAfterTurn();
    if (fin) {
      this.#readFinished = true;
      this.#maybeFinished();
    }
    if (length === 0) return fin ? null : undefined;
    return into === undefined ? host.scratch.slice(0, length) : into.subarray(0, length);
  }

  /**
   * Bytes quiche would take on this stream now (flow control and congestion window). Offering
   * bytes while it is 0 makes quiche queue one more STREAM_DATA_BLOCKED frame: a retry on
   * every packet then turns into a ping-pong of those frames and their acknowledgements.
   * Infinity when quiche does not know the stream (the push reports why).
   */
  #sendCapacity(): number {
    try {
      return this.#native.streamCapacity(this.id);
    } catch {
      return Infinity;
    }
  }

  /**
   * Offers bytes to quiche: how many it took, PUSH_BLOCKED when it took nothing (not even
   * an empty FIN), or PUSH_FAILED after recording a write error.
   */
  #push(data: Uint8Array, fin: boolean): number {
    try {
      // quiche answers Done (null here) when its send capacity is 0, also to a bare FIN.
      return this.#native.streamSend(this.id, data, fin) ?? PUSH_BLOCKED;
    } catch (e) {
      if ((e as Error).message === "Done") return PUSH_BLOCKED;
      this.#failWrites(streamError(e, this.id));
      return PUSH_FAILED;
    }
  }

  #finishWrite(): void {
    this.#writeFinished = true;
    this.#maybeFinished();
  }

  #failRead(error: Error): void {
    this.#readError ??= error;
    this.#readFinished = true;
    const waiter = this.#readWaiter;
    this.#readWaiter = undefined;
    waiter?.reject(error);
    this.#maybeFinished();
  }

  #failWrites(error: Error): void {
    this.#writeError ??= error;
    this.#tail = undefined;
    this.#finQueued = true;
    this.#writeFinished = true;
    const writes = this.#writes;
    this.#writes = [];
    for (const w of writes) w.reject(error);
    this.#maybeFinished();
  }

  #maybeFinished(): void {
    if (this.#readFinished && this.#writeFinished && this.#readWaiter === undefined) {
      this.#host.finished(this);
    }
  }
}

/** Turns quiche's `StreamReset(n)` / `StreamStopped(n)` messages into typed errors. */
function streamError(e: unknown, id: number): Error {
  const message = (e as Error).message ?? String(e);
  const match = /^Stream(Reset|Stopped)\((\d+)\)$/.exec(message);
  if (match !== null) {
    return new StreamResetError(
      match[1] === "Reset" ? "ERR_STREAM_RESET" : "ERR_STREAM_STOPPED",
      id,
      Number(match[2]),
    );
  }
  return new NetworkError(
    "ERR_STREAM_CLOSED",
    `Stream ${id} failed in quiche: ${message}`,
    { cause: e },
  );
}
