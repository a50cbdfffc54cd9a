// The defaults of RecordLimits, shared by the record codec and the wire codec.
import type { RecordLimits } from "./records.ts";

/** Applies the defaults of `RecordLimits`. */
export function resolveRecordLimits(limits: RecordLimits = {}): Required<RecordLimits> {
  const {
    maxRecordBytes = 12288,
    maxAddresses = 16,
    maxAddressBytes = 256,
    maxPeerIdBytes = 256,
    maxTtlMs = 172_800_000,
  } = limits;
  return { maxRecordBytes, maxAddresses, maxAddressBytes, maxPeerIdBytes, maxTtlMs };
}
