// glibc's view of the native heap (Rust's quiche and BoringSSL, Deno's ops, ArrayBuffer
// backing stores) for bench/transport/memory.ts: bytes in use and bytes free inside malloc's
// arenas, which RSS cannot tell apart. Undefined where libc.so.6 has no mallinfo2 (not glibc
// 2.33+) or FFI is not allowed.

/** Native heap bytes, as glibc's `mallinfo2` counts them. */
export interface MallocInfo {
  /** Bytes handed out by malloc and not freed (`uordblks`). */
  inUseBytes: number;
  /** Bytes freed but kept in malloc's arenas (`fordblks`): fragmentation, not yet trimmed. */
  freeBytes: number;
}

const FIELDS = 10;

/** Opens libc's `mallinfo2`; undefined where that is not possible. */
export function openMallocInfo(): (() => MallocInfo) | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    const libc = Deno.dlopen("libc.so.6", {
      mallinfo2: { parameters: [], result: { struct: Array(FIELDS).fill("usize") } },
    });
    return () => {
      const raw = libc.symbols.mallinfo2() as Uint8Array;
      const fields = new BigUint64Array(raw.buffer, raw.byteOffset, FIELDS);
      return { inUseBytes: Number(fields[7]), freeBytes: Number(fields[8]) };
    };
  } catch {
    return undefined;
  }
}
