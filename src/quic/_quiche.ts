// The quiche binding of @matrixai/quic, typed. Only the binding is imported: the package's
// QUICServer/QUICClient wrapper is not used (it is slow and hangs under load, see NOTES.md).
import quiche from "@matrixai/quic/native/quiche.js";
import type { Quiche } from "@matrixai/quic/native/quiche.js";
export type {
  Config as QuicheConfig,
  Connection as QuicheConnection,
  ConnectionError as QuicheConnectionError,
  Host as QuicheHost,
  PathStats as QuichePathStats,
  RecvInfo as QuicheRecvInfo,
  Stats as QuicheStats,
} from "@matrixai/quic/native/types.js";

/** The native quiche binding. */
export const native: Quiche = quiche;
