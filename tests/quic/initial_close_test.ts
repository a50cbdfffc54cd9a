/**
 * A client refused at its first Initial (`admit` returning a reason) hears CONNECTION_REFUSED
 * and the reason from a stateless Initial packet, against quiche's own client over real UDP.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ConnectionClosedError, type NetworkError } from "../../src/errors.ts";
import { pair, within } from "./_util.ts";

const CONNECTION_REFUSED = 0x2;

Deno.test("initial close: a client refused before TLS hears why, and the listener keeps nothing", async () => {
  const reason = "Too many new handshakes from 127.0.0.1: refused a moment ago, retry later";
  await using p = await pair({ admit: () => reason });
  const refused = await within(
    p.client.connect(p.server.localAddr, { timeoutMs: 60_000 }).then(
      () => undefined,
      (e: Error) => e,
    ),
    10_000,
    "the refused connect",
  );
  assert.ok(refused instanceof ConnectionClosedError, String(refused));
  assert.deepEqual([refused.isApp, refused.errorCode, refused.reason], [
    false,
    CONNECTION_REFUSED,
    reason,
  ]);
  const stats = p.server.stats();
  // The Retry proved the address; then no connection, no TLS.
  assert.deepEqual(
    [stats.retriesSent, stats.connectionsAccepted, stats.connectionsRefused, stats.openConnections],
    [1, 0, 1, 0],
  );
});

Deno.test("initial close: refusals are rate-limited per address, then dropped unanswered", async () => {
  await using p = await pair({ admit: () => "no" });
  const outcomes: string[] = [];
  for (let i = 0; i < 3; i++) {
    const outcome = await p.client.connect(p.server.localAddr, { timeoutMs: 1000 }).then(
      () => "connected",
      (e: NetworkError) => e.code,
    );
    outcomes.push(outcome);
  }
  // A burst of two answers per address, then one a second: the third, at once, gets none.
  assert.deepEqual(outcomes, [
    "ERR_CONNECTION_CLOSED",
    "ERR_CONNECTION_CLOSED",
    "ERR_CONNECT_TIMEOUT",
  ]);
  assert.equal(p.server.stats().connectionsRefused, 3);
});
