// The quiche binding of @matrixai/quic, loaded straight from its platform package.
//
// Why not `import "npm:@matrixai/quic"`: the package lists optional platform packages that were
// never published at 2.0.9 (darwin, win32), and Deno's resolver aborts on them
// (denoland/deno#29307). The platform package holds only the Node-API addon, which an ES import
// cannot load, so it is required by its file path in Deno's cache. The binding's TypeScript
// types live in @matrixai/quic's own files, which cannot be resolved that way: the part of the
// binding this module uses is typed below. The wrapper classes (QUICServer, ...) are not used:
// they are slow and hang under load (NOTES.md).
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL as toFileUrl } from "node:url";
import { NetworkError } from "../errors.ts";
// Makes Deno fetch the package with the module graph, so that the addon's file is in its cache
// when an endpoint binds. The JSON is tiny; importing it runs nothing. Spelled out rather than
// mapped in deno.json: it must be the very specifier that `import.meta.resolve` gets below, and a
// published module's runtime `import.meta.resolve` does not see this package's import map.
// deno-lint-ignore no-import-prefix
import "npm:@matrixai/quic-linux-x64@2.0.9/package.json" with { type: "json" };

/** The platforms with a published quiche addon at @matrixai/quic 2.0.9 (`npm view`). */
const ADDONS: Readonly<Record<string, string>> = {
  "linux-x86_64": "npm:@matrixai/quic-linux-x64@2.0.9/node.napi.node",
};

/** An address as quiche takes and reports it. */
export interface QuicheHost {
  host: string;
  port: number;
}

/** Where a datagram came from and went to. */
export interface QuicheRecvInfo {
  from: QuicheHost;
  to: QuicheHost;
}

/** A CONNECTION_CLOSE that was sent or received. */
export interface QuicheConnectionError {
  isApp: boolean;
  errorCode: number;
  reason: Uint8Array;
}

/** quiche's connection counters (the part this module reads). */
export interface QuicheStats {
  recv: number;
  sent: number;
  lost: number;
  retrans: number;
  sentBytes: number;
  recvBytes: number;
  lostBytes: number;
}

/** quiche's per-path counters (the part this module reads). */
export interface QuichePathStats {
  rtt: number;
  cwnd: number;
  pmtu: number;
  deliveryRate: number;
}

/** A quiche configuration (`quiche::Config`). */
export interface QuicheConfig {
  setApplicationProtos(protos: string[]): void;
  setMaxIdleTimeout(timeoutMs: number): void;
  setMaxRecvUdpPayloadSize(size: number): void;
  setMaxSendUdpPayloadSize(size: number): void;
  setInitialMaxData(bytes: number): void;
  setInitialMaxStreamDataBidiLocal(bytes: number): void;
  setInitialMaxStreamDataBidiRemote(bytes: number): void;
  setInitialMaxStreamDataUni(bytes: number): void;
  setInitialMaxStreamsBidi(count: number): void;
  setInitialMaxStreamsUni(count: number): void;
  setCcAlgorithmName(name: string): void;
  setDisableActiveMigration(disable: boolean): void;
  grease(grease: boolean): void;
  enableEarlyData(): void;
  setMaxConnectionWindow(bytes: number): void;
  setMaxStreamWindow(bytes: number): void;
}

/** A quiche connection (`quiche::Connection`); the methods throw for quiche's `Done`. */
export interface QuicheConnection {
  setSession(session: Uint8Array): void;
  recv(data: Uint8Array, info: QuicheRecvInfo): number;
  send(out: Uint8Array): [number, { from: QuicheHost; to: QuicheHost }] | null;
  streamRecv(streamId: number, out: Uint8Array): [number, boolean] | null;
  streamSend(streamId: number, data: Uint8Array, fin: boolean): number | null;
  streamShutdown(streamId: number, direction: number, code: number): void | null;
  streamReadable(streamId: number): boolean;
  streamCapacity(streamId: number): number;
  peerStreamsLeftBidi(): number;
  peerStreamsLeftUni(): number;
  readable(): Iterable<number>;
  timeout(): number | null;
  onTimeout(): void;
  close(app: boolean, code: number, reason: Uint8Array): void | null;
  applicationProto(): Uint8Array;
  peerCertChain(): Uint8Array[] | null;
  session(): Uint8Array | null;
  sourceId(): Uint8Array;
  destinationId(): Uint8Array;
  isEstablished(): boolean;
  isResumed(): boolean;
  isInEarlyData(): boolean;
  isReadable(): boolean;
  isDraining(): boolean;
  isClosed(): boolean;
  isTimedOut(): boolean;
  peerError(): QuicheConnectionError | null;
  localError(): QuicheConnectionError | null;
  stats(): QuicheStats;
  pathStats(): QuichePathStats[];
  sendAckEliciting(): void;
}

/** A parsed QUIC long header. */
export interface QuicheHeader {
  ty: number;
  version: number;
  dcid: Uint8Array;
  scid: Uint8Array;
  token?: Uint8Array;
}

/** The binding's module object (the part this module uses). */
export interface QuicheBinding {
  versionIsSupported(version: number): boolean;
  negotiateVersion(scid: Uint8Array, dcid: Uint8Array, out: Uint8Array): number;
  retry(
    scid: Uint8Array,
    dcid: Uint8Array,
    newScid: Uint8Array,
    token: Uint8Array,
    version: number,
    out: Uint8Array,
  ): number;
  Config: {
    withBoringSslCtx(
      verifyPeer: boolean,
      verifyAllowFail: boolean,
      ca: Uint8Array | null,
      keys: Uint8Array[] | null,
      certs: Uint8Array[] | null,
      sigalgs: string | null,
    ): QuicheConfig;
  };
  Connection: {
    connect(
      serverName: string,
      scid: Uint8Array,
      local: QuicheHost,
      remote: QuicheHost,
      config: QuicheConfig,
    ): QuicheConnection;
    accept(
      scid: Uint8Array,
      odcid: Uint8Array | null,
      local: QuicheHost,
      remote: QuicheHost,
      config: QuicheConfig,
    ): QuicheConnection;
  };
  Header: { fromSlice(data: Uint8Array, dcidLength: number): QuicheHeader };
}

/** `quiche::Shutdown`: which half of a stream `streamShutdown` closes. */
export const Shutdown = { Read: 0, Write: 1 } as const;

/** `quiche::Type`: the packet types `Header.fromSlice` reports (the one this module checks). */
export const PacketType = { Initial: 0 } as const;

let loaded: QuicheBinding | undefined;

/**
 * The npm specifier of the quiche addon for a platform (`os-arch` as `Deno.build` names them).
 *
 * @throws {NetworkError} `ERR_UNSUPPORTED_PLATFORM` where no addon is published.
 */
export function addonSpecifier(platform: string): string {
  const specifier = ADDONS[platform];
  if (specifier === undefined) {
    throw new NetworkError(
      "ERR_UNSUPPORTED_PLATFORM",
      `Cannot load quiche: @matrixai/quic 2.0.9 has no addon for ${platform}; supported: ${
        Object.keys(ADDONS).join(", ")
      }`,
    );
  }
  return specifier;
}

/**
 * The path of this platform's quiche addon in Deno's npm cache: what `--allow-ffi` must cover.
 *
 * @throws {NetworkError} `ERR_UNSUPPORTED_PLATFORM` where no addon is published.
 */
export function quicheAddonPath(): string {
  const specifier = addonSpecifier(`${Deno.build.os}-${Deno.build.arch}`);
  return fileURLToPath(import.meta.resolve(specifier));
}

/**
 * The quiche binding, loaded on first use.
 *
 * @throws {NetworkError} `ERR_UNSUPPORTED_PLATFORM` where no addon is published,
 *   `ERR_PERMISSION_DENIED` without `--allow-ffi` for the addon's file.
 */
export function loadQuiche(): QuicheBinding {
  if (loaded !== undefined) return loaded;
  const path = quicheAddonPath();
  try {
    loaded = createRequire(toFileUrl(path))(path) as QuicheBinding;
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new NetworkError(
        "ERR_PERMISSION_DENIED",
        `Cannot load quiche: the addon needs --allow-ffi (for example --allow-ffi=${path}); ${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
    throw e;
  }
  return loaded;
}
