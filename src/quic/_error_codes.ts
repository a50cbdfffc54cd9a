// Names of QUIC transport error codes (RFC 9000 section 20.1) and of the TLS alerts carried in
// CRYPTO_ERROR (0x100 + alert, RFC 9001 section 4.8), for error messages, logs and counters.

const TRANSPORT_ERRORS = [
  "NO_ERROR",
  "INTERNAL_ERROR",
  "CONNECTION_REFUSED",
  "FLOW_CONTROL_ERROR",
  "STREAM_LIMIT_ERROR",
  "STREAM_STATE_ERROR",
  "FINAL_SIZE_ERROR",
  "FRAME_ENCODING_ERROR",
  "TRANSPORT_PARAMETER_ERROR",
  "CONNECTION_ID_LIMIT_ERROR",
  "PROTOCOL_VIOLATION",
  "INVALID_TOKEN",
  "APPLICATION_ERROR",
  "CRYPTO_BUFFER_EXCEEDED",
  "KEY_UPDATE_ERROR",
  "AEAD_LIMIT_REACHED",
  "NO_VIABLE_PATH",
];

// TLS 1.3 alert descriptions (RFC 8446 section 6, RFC 7301), with what each means for us.
const TLS_ALERTS: Readonly<Record<number, string>> = {
  10: "unexpected_message",
  20: "bad_record_mac",
  40: "handshake_failure",
  42: "bad_certificate",
  43: "unsupported_certificate",
  44: "certificate_revoked",
  45: "certificate_expired",
  46: "certificate_unknown",
  47: "illegal_parameter",
  48: "unknown_ca",
  49: "access_denied",
  50: "decode_error",
  51: "decrypt_error",
  70: "protocol_version",
  71: "insufficient_security",
  80: "internal_error",
  90: "user_canceled",
  109: "missing_extension",
  110: "unsupported_extension",
  112: "unrecognized_name",
  116: "certificate_required",
  120: "no_application_protocol",
};

const CRYPTO_ERROR = 0x100;

/** The TLS alert a CRYPTO_ERROR transport code carries, else undefined. */
export function tlsAlertOf(code: number): number | undefined {
  return code >= CRYPTO_ERROR && code <= 0x1ff ? code - CRYPTO_ERROR : undefined;
}

/**
 * Says what a QUIC transport error code means: `TLS alert 116 (certificate_required)`,
 * `CONNECTION_REFUSED`, or the code in hex when it has no name.
 */
export function describeTransportError(code: number): string {
  const alert = tlsAlertOf(code);
  if (alert !== undefined) return `TLS alert ${alert} (${TLS_ALERTS[alert] ?? "unknown alert"})`;
  return TRANSPORT_ERRORS[code] ?? `transport error 0x${code.toString(16)}`;
}

/**
 * A short stable key for a transport error code, for counters: `tls_alert_116`,
 * `connection_refused`, `0x2a`.
 */
export function transportErrorKey(code: number): string {
  const alert = tlsAlertOf(code);
  if (alert !== undefined) return `tls_alert_${alert}`;
  const name = TRANSPORT_ERRORS[code];
  return name === undefined ? `0x${code.toString(16)}` : name.toLowerCase();
}
