import assert from "node:assert/strict";
import { NetworkError } from "../../src/errors.ts";
import { addonSpecifier, loadQuiche, quicheAddonPath } from "../../src/quic/_quiche.ts";

Deno.test("quiche addon: a platform without a published addon is a typed error naming it", () => {
  assert.throws(
    () => addonSpecifier("darwin-aarch64"),
    (e: unknown) =>
      e instanceof NetworkError && e.code === "ERR_UNSUPPORTED_PLATFORM" &&
      e.message.includes("darwin-aarch64") && e.message.includes("supported: linux-x86_64"),
  );
  assert.equal(addonSpecifier("linux-x86_64"), "npm:@matrixai/quic-linux-x64@2.0.9/node.napi.node");
});

Deno.test({
  name: "quiche addon: loaded from Deno's npm cache, not from node_modules",
  ignore: Deno.build.os !== "linux" || Deno.build.arch !== "x86_64",
  async fn() {
    const path = quicheAddonPath();
    assert.ok(!path.includes("node_modules"), path);
    assert.ok((await Deno.stat(path)).isFile, path);
    assert.equal(typeof loadQuiche().Connection.connect, "function");
    assert.equal(loadQuiche(), loadQuiche(), "loaded once");
  },
});
