import assert from "node:assert/strict";
import { SingleFlight } from "../../src/pool/single_flight.ts";

Deno.test("SingleFlight shares one dial among concurrent callers for a key", async () => {
  const flights = new SingleFlight<string, string>();
  let dials = 0;
  const { promise: gate, resolve: open } = Promise.withResolvers<void>();
  const dial = (peer: string) =>
    flights.run(peer, async () => {
      dials++;
      await gate;
      return `conn-${peer}-${dials}`;
    });
  const calls = [dial("a"), dial("a"), dial("b"), dial("a")];
  assert.equal(dials, 2);
  assert.equal(flights.size, 2);
  assert.equal(flights.get("a"), calls[0]);
  open();
  const results = await Promise.all(calls);
  assert.equal(results[0], results[1]);
  assert.equal(results[0], results[3]);
  assert.notEqual(results[0], results[2]);
  assert.equal(flights.size, 0);
  assert.equal(await dial("a"), "conn-a-3", "a settled key starts a new dial");
});

Deno.test("SingleFlight shares a failure, then lets the next call retry", async () => {
  const flights = new SingleFlight<string, number>();
  let attempts = 0;
  const run = () =>
    flights.run("k", () => {
      attempts++;
      return attempts === 1 ? Promise.reject(new Error("unreachable")) : Promise.resolve(7);
    });
  const [first, second] = [run(), run()];
  await assert.rejects(first, /unreachable/);
  await assert.rejects(second, /unreachable/);
  assert.equal(await run(), 7);
  assert.equal(attempts, 2);
});

Deno.test("SingleFlight turns a synchronous throw into a rejection and keeps the key free", async () => {
  const flights = new SingleFlight<string, number>();
  await assert.rejects(
    flights.run("k", () => {
      throw new Error("bad");
    }),
    /bad/,
  );
  assert.equal(flights.size, 0);
});
