/**
 * A meter provider for tests that keeps every recording in memory: what the module hands to
 * OpenTelemetry, without an SDK.
 *
 * @module
 */
import type {
  Attributes,
  Meter,
  MeterProvider,
  ObservableCallback,
  ObservableResult,
} from "@opentelemetry/api";

/** One recording: a counter's add, a histogram's record or a gauge's observation. */
export interface Recording {
  value: number;
  attributes: Attributes;
}

/** The provider and what was recorded, by instrument name. */
export class RecordingMeterProvider implements MeterProvider {
  readonly recorded = new Map<string, Recording[]>();
  readonly units = new Map<string, string>();
  readonly #callbacks = new Map<string, ObservableCallback[]>();

  getMeter(): Meter {
    const instrument = (name: string, options?: { unit?: string }) => {
      this.units.set(name, options?.unit ?? "");
      const record = (value: number, attributes: Attributes = {}) => {
        const list = this.recorded.get(name) ?? [];
        list.push({ value, attributes });
        this.recorded.set(name, list);
      };
      return {
        add: record,
        record,
        addCallback: (callback: ObservableCallback) => {
          this.#callbacks.set(name, [...(this.#callbacks.get(name) ?? []), callback]);
        },
        removeCallback: () => {},
      };
    };
    return {
      createCounter: instrument,
      createUpDownCounter: instrument,
      createHistogram: instrument,
      createGauge: instrument,
      createObservableGauge: instrument,
      createObservableCounter: instrument,
      createObservableUpDownCounter: instrument,
      addBatchObservableCallback: () => {},
      removeBatchObservableCallback: () => {},
    } as unknown as Meter;
  }

  /** Runs the callbacks of an observable instrument, as a collection would. */
  async observe(name: string): Promise<Recording[]> {
    const seen: Recording[] = [];
    const result: ObservableResult = {
      observe: (value, attributes = {}) => seen.push({ value, attributes }),
    };
    for (const callback of this.#callbacks.get(name) ?? []) await callback(result);
    return seen;
  }

  /** Sum of the values of `name` whose attributes include `match`. */
  total(name: string, match: Attributes = {}): number {
    return this.count(name, match, (r) => r.value);
  }

  /** Recordings of `name` whose attributes include `match`. */
  count(name: string, match: Attributes = {}, weight = (_: Recording) => 1): number {
    return (this.recorded.get(name) ?? [])
      .filter((r) => Object.entries(match).every(([k, v]) => r.attributes[k] === v))
      .reduce((sum, r) => sum + weight(r), 0);
  }
}
