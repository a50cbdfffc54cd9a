/**
 * The timer side of a STUN transaction over UDP (RFC 8489 section 6.2.1), shared by the STUN
 * Binding client and the TURN client. Private to `src/nat/`.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import type { StunRetransmitSchedule } from "./stun_client.ts";

/**
 * Runs one transaction's send schedule: calls `send` at every time in `schedule.sendAt`, then
 * `giveUp` at `schedule.giveUpAt` unless stopped first. The first send happens during the
 * call. Times are relative to the start, so timer lateness does not stretch the schedule.
 *
 * @param clock Clock and timers.
 * @param schedule From `stunRetransmitSchedule`.
 * @param send Sends the request once; gets the 1-based attempt number.
 * @param giveUp Called once when the schedule ran out, with the number of requests sent.
 * @returns A function that stops the schedule (idempotent).
 */
export function retransmit(
  clock: Clock,
  schedule: StunRetransmitSchedule,
  send: (attempt: number) => void,
  giveUp: (sent: number) => void,
): () => void {
  const start = clock.now();
  let sent = 0;
  let stopped = false;
  let cancelTimer = () => {};
  const step = () => {
    if (stopped) return;
    if (sent >= schedule.sendAt.length) {
      stopped = true;
      giveUp(sent);
      return;
    }
    sent++;
    send(sent);
    if (stopped) return;
    const next = sent < schedule.sendAt.length ? schedule.sendAt[sent] : schedule.giveUpAt;
    cancelTimer = clock.schedule(step, Math.max(0, next - (clock.now() - start)));
  };
  step();
  return () => {
    stopped = true;
    cancelTimer();
  };
}
