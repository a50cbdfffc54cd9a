/** `SessionTicketStore`: validation, the LRU bound, single use of each half, modes. */

import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { InvalidConfigError } from "../../src/errors.ts";
import { SessionTicketStore } from "../../src/handshake/mod.ts";
import type { TicketSecret } from "../../src/handshake/session_tickets.ts";
import { toHex } from "../../src/_bytes.ts";

const PQ = 1;
const AUTH_ONLY = 0;

/** A ticket whose id and secret are filled with `n` (ids of different `n` differ). */
function ticket(n: number): TicketSecret {
  return { id: new Uint8Array(16).fill(n), secret: new Uint8Array(32).fill(n) };
}

/** Saves for `peer` the dialing ticket `n` and the listening ticket `n + 100`. */
function savePair(store: SessionTicketStore, peer: string, n: number, mode = PQ): string {
  store.save(peer, mode, ticket(n), ticket(n + 100));
  return toHex(ticket(n + 100).id);
}

Deno.test("session tickets: maxPeers must be a non-negative integer", () => {
  for (const maxPeers of [-1, 1.5, NaN, Infinity, "2" as unknown as number]) {
    const e = assertThrows(
      () => new SessionTicketStore({ maxPeers }),
      InvalidConfigError,
      "'maxPeers' must be a non-negative integer",
    );
    assertEquals([e.code, e.field], ["ERR_INVALID_CONFIG", "maxPeers"]);
    assert(e.message.includes(String(maxPeers)), e.message);
  }
  assertEquals(new SessionTicketStore().size, 0);
  assertEquals(new SessionTicketStore({}).size, 0);
});

Deno.test("session tickets: maxPeers 0 keeps none", () => {
  const store = new SessionTicketStore({ maxPeers: 0 });
  const id = savePair(store, "peer", 1);
  assertEquals(store.size, 0);
  assert(!store.has("peer", PQ));
  assertEquals(store.takeForDialing("peer", PQ), undefined);
  assertEquals(store.takeForListening(id), undefined);
});

Deno.test("session tickets: the least recently saved peer goes first, both halves", () => {
  const store = new SessionTicketStore({ maxPeers: 2 });
  const ids = ["p1", "p2", "p3"].map((peer, i) => savePair(store, peer, i + 1));
  assertEquals(store.size, 2);
  assert(!store.has("p1", PQ), "p1's dialing half is gone");
  assertEquals(store.takeForDialing("p1", PQ), undefined);
  assertEquals(store.takeForListening(ids[0]), undefined, "p1's listening half is gone");
  assertEquals(store.takeForDialing("p2", PQ), ticket(2));
  assertEquals(store.takeForListening(ids[2])?.peer, "p3");
});

Deno.test("session tickets: saving again replaces a peer's dialing ticket, keeps one listening ticket before the new one, and makes the peer the newest", () => {
  const store = new SessionTicketStore({ maxPeers: 2 });
  const oldestId = savePair(store, "p1", 1);
  savePair(store, "p2", 2);
  const previousId = savePair(store, "p1", 5);
  const newId = savePair(store, "p1", 3);
  assertEquals(store.size, 2);
  assertEquals(store.takeForListening(oldestId), undefined, "two sessions back is forgotten");
  // Crossing dials leave two sessions: the peer may hold its dialing ticket from either.
  assertEquals(store.takeForListening(previousId)?.secret, ticket(105).secret);
  assertEquals(store.takeForListening(previousId), undefined, "still one use each");
  savePair(store, "p3", 4); // p2 is now the least recently saved
  assert(!store.has("p2", PQ));
  assertEquals(store.takeForDialing("p1", PQ), ticket(3));
  assertEquals(store.takeForListening(newId), {
    secret: ticket(103).secret,
    peer: "p1",
    mode: PQ,
  });
});

Deno.test("session tickets: each take forgets only its own half, once", () => {
  const store = new SessionTicketStore();
  const id = savePair(store, "peer", 1);
  assert(store.has("peer", PQ));
  assertEquals(store.takeForDialing("peer", PQ), ticket(1));
  assert(!store.has("peer", PQ), "the dialing half is used");
  assertEquals(store.takeForDialing("peer", PQ), undefined);
  assertEquals(store.size, 1, "the listening half is still held");
  assertEquals(store.takeForListening(id)?.secret, ticket(101).secret);
  assertEquals(store.takeForListening(id), undefined, "single use");
  assertEquals(store.size, 0, "nothing left for the peer");

  // The other order.
  const again = savePair(store, "peer", 2);
  assertEquals(store.takeForListening(again)?.peer, "peer");
  assertEquals(store.size, 1);
  assert(store.has("peer", PQ), "the dialing half is still held");
  assertEquals(store.takeForDialing("peer", PQ), ticket(2));
  assertEquals(store.size, 0);
  assertEquals(store.takeForListening(toHex(ticket(9).id)), undefined, "an unknown id");
});

Deno.test("session tickets: a ticket of another mode is not returned for dialing", () => {
  const store = new SessionTicketStore();
  const id = savePair(store, "peer", 1, AUTH_ONLY);
  assert(!store.has("peer", PQ));
  assertEquals(store.takeForDialing("peer", PQ), undefined);
  assert(store.has("peer", AUTH_ONLY), "a mismatched take does not use the ticket");
  // The listening half reports the mode it was issued in, for the listener to check.
  assertEquals(store.takeForListening(id)?.mode, AUTH_ONLY);
  assertEquals(store.takeForDialing("peer", AUTH_ONLY), ticket(1));
});
