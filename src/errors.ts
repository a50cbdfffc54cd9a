/**
 * Error classes of the network module. Every error carries a stable `code` string that
 * programs can switch on; the message says what was wrong and which value was seen.
 *
 * @module
 */

/** Stable error codes of the network module. */
export type NetworkErrorCode =
  | "ERR_INVALID_CONFIG"
  | "ERR_INVALID_ADDRESS"
  | "ERR_CONNECT_TIMEOUT"
  | "ERR_CONNECTION_CLOSED"
  | "ERR_ENDPOINT_CLOSED"
  | "ERR_STREAM_RESET"
  | "ERR_STREAM_STOPPED"
  | "ERR_STREAM_CLOSED"
  | "ERR_TLS"
  | "ERR_PEER_ID_MISMATCH"
  | "ERR_PEER_NOT_ALLOWED"
  | "ERR_PEER_BANNED"
  | "ERR_HANDSHAKE_FAILED"
  | "ERR_HANDSHAKE_TIMEOUT"
  | "ERR_DECRYPT"
  | "ERR_INVALID_KEY"
  | "ERR_INVALID_PEER_ID"
  | "ERR_MALFORMED_FRAME"
  | "ERR_MESSAGE_TOO_LARGE"
  | "ERR_UNKNOWN_PEER"
  | "ERR_UNKNOWN_PROTOCOL"
  | "ERR_LIMIT_EXCEEDED"
  | "ERR_ABORTED"
  | "ERR_TIMEOUT"
  | "ERR_STUN"
  | "ERR_NAT_TRAVERSAL_FAILED"
  | "ERR_TURN"
  | "ERR_TURN_AUTH"
  | "ERR_TURN_ALLOCATION_EXPIRED"
  | "ERR_MDNS"
  | "ERR_DHT"
  | "ERR_UNSUPPORTED_PLATFORM"
  | "ERR_PERMISSION_DENIED"
  | "ERR_PEER_STORE";

/**
 * Base class of every error this module throws.
 *
 * @example Telling errors apart by code
 * ```ts
 * import { NetworkError } from "@cretoai/network";
 *
 * try {
 *   throw new NetworkError("ERR_TIMEOUT", "Cannot finish: took longer than 10 ms");
 * } catch (e) {
 *   if (e instanceof NetworkError && e.code === "ERR_TIMEOUT") {
 *     // retry, report, ...
 *   }
 * }
 * ```
 */
export class NetworkError extends Error {
  /** Stable machine-readable code, for example `"ERR_CONNECT_TIMEOUT"`. */
  readonly code: NetworkErrorCode;

  /**
   * Creates an error with a code and a message.
   *
   * @param code The stable code.
   * @param message What was wrong, and the value seen.
   * @param options Standard error options, such as `cause`.
   */
  constructor(code: NetworkErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * A configuration value broke a rule. The message names the field, the rule and the value.
 *
 * @example
 * ```ts
 * import { InvalidConfigError } from "@cretoai/network";
 *
 * const err = new InvalidConfigError("maxConnections", "a positive integer", -1);
 * console.assert(err.code === "ERR_INVALID_CONFIG");
 * ```
 */
export class InvalidConfigError extends NetworkError {
  /** The option that was wrong. */
  readonly field: string;

  /**
   * Creates the error.
   *
   * @param field Name of the option.
   * @param rule What the value must be.
   * @param value The value seen.
   */
  constructor(field: string, rule: string, value: unknown) {
    super(
      "ERR_INVALID_CONFIG",
      `Invalid config: '${field}' must be ${rule}: current value is ${describe(value)}`,
    );
    this.field = field;
  }
}

/**
 * An address could not be parsed or used.
 *
 * @example
 * ```ts
 * import { InvalidAddressError } from "@cretoai/network";
 *
 * const err = new InvalidAddressError("nonsense", "expected HOST:PORT");
 * console.assert(err.code === "ERR_INVALID_ADDRESS");
 * ```
 */
export class InvalidAddressError extends NetworkError {
  /**
   * Creates the error.
   *
   * @param address The address as given.
   * @param reason What is wrong with it.
   */
  constructor(address: string, reason: string) {
    super("ERR_INVALID_ADDRESS", `Invalid address ${describe(address)}: ${reason}`);
  }
}

/**
 * A connection closed, or was closed, while an operation needed it.
 *
 * @example
 * ```ts
 * import { ConnectionClosedError } from "@cretoai/network";
 *
 * const err = new ConnectionClosedError("closed by peer", { isApp: true, errorCode: 7, reason: "bye" });
 * console.assert(err.errorCode === 7);
 * ```
 */
export class ConnectionClosedError extends NetworkError {
  /** The QUIC error code of the close, when one was sent or received. */
  readonly errorCode: number | undefined;
  /** Whether the code is an application code (else a QUIC transport code). */
  readonly isApp: boolean | undefined;
  /** The reason phrase of the close. */
  readonly reason: string;

  /**
   * Creates the error.
   *
   * @param what Which side closed, or why.
   * @param detail The close frame's fields, when known.
   */
  constructor(what: string, detail?: { isApp: boolean; errorCode: number; reason: string }) {
    super(
      "ERR_CONNECTION_CLOSED",
      detail === undefined
        ? `Connection closed: ${what}`
        : `Connection closed: ${what} (${
          detail.isApp ? "application" : "transport"
        } code ${detail.errorCode}${
          detail.reason ? `, reason ${JSON.stringify(detail.reason)}` : ""
        })`,
    );
    this.errorCode = detail?.errorCode;
    this.isApp = detail?.isApp;
    this.reason = detail?.reason ?? "";
  }
}

/**
 * The peer reset a stream we read (RESET_STREAM), or asked us to stop writing (STOP_SENDING).
 *
 * @example
 * ```ts
 * import { StreamResetError } from "@cretoai/network";
 *
 * const err = new StreamResetError("ERR_STREAM_RESET", 4, 99);
 * console.assert(err.errorCode === 99);
 * ```
 */
export class StreamResetError extends NetworkError {
  /** The stream's id. */
  readonly streamId: number;
  /** The application error code the peer sent. */
  readonly errorCode: number;

  /**
   * Creates the error.
   *
   * @param code `ERR_STREAM_RESET` for RESET_STREAM, `ERR_STREAM_STOPPED` for STOP_SENDING.
   * @param streamId The stream's id.
   * @param errorCode The peer's application error code.
   */
  constructor(
    code: "ERR_STREAM_RESET" | "ERR_STREAM_STOPPED",
    streamId: number,
    errorCode: number,
  ) {
    super(
      code,
      code === "ERR_STREAM_RESET"
        ? `Stream ${streamId} was reset by the peer with code ${errorCode}`
        : `Stream ${streamId} was stopped by the peer (STOP_SENDING) with code ${errorCode}`,
    );
    this.streamId = streamId;
    this.errorCode = errorCode;
  }
}

/** Formats a value for an error message: strings quoted, the rest as JSON where possible. */
export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number") return String(value); // JSON would show Infinity as null
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
