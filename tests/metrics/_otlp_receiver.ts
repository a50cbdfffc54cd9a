/**
 * A small OTLP/HTTP receiver for tests: takes the JSON a Deno process with `OTEL_DENO=true`
 * and `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` POSTs to `/v1/metrics`, and keeps its data points
 * by metric name.
 *
 * @module
 */

/** One data point as OTLP/JSON carries it (sums and gauges; histograms with count and sum). */
export interface DataPoint {
  attributes: Record<string, string | number | boolean>;
  /** A counter's or gauge's value; a histogram's sum. */
  value: number;
  /** A histogram's count; 1 for the others. */
  count: number;
  unit: string;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}

interface OtlpPoint {
  attributes?: { key: string; value: OtlpValue }[];
  asInt?: string | number;
  asDouble?: number;
  count?: string | number;
  sum?: number;
}

interface OtlpMetric {
  name: string;
  unit?: string;
  sum?: { dataPoints: OtlpPoint[] };
  gauge?: { dataPoints: OtlpPoint[] };
  histogram?: { dataPoints: OtlpPoint[] };
}

interface OtlpExport {
  resourceMetrics?: { scopeMetrics?: { metrics?: OtlpMetric[] }[] }[];
}

/** The receiver: the latest export's points of each metric name. */
export class OtlpReceiver implements AsyncDisposable {
  /** Latest data points by metric name (cumulative temporality: the latest export is the total). */
  readonly latest = new Map<string, DataPoint[]>();
  /** Exports received. */
  exports = 0;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #changes = new EventTarget();

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (request) => {
        const url = new URL(request.url);
        if (request.method !== "POST" || url.pathname !== "/v1/metrics") {
          await request.body?.cancel();
          return new Response("{}", { status: url.pathname.startsWith("/v1/") ? 200 : 404 });
        }
        this.#take(await request.json() as OtlpExport);
        return Response.json({});
      },
    );
  }

  /** `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** Resolves once `ready()` holds after an export; rejects after `ms`. */
  until(what: string, ready: () => boolean, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!ready()) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`${what}: not seen within ${ms} ms; metrics seen: ${[...this.latest.keys()]}`),
        );
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.#changes.removeEventListener("export", check);
      };
      this.#changes.addEventListener("export", check);
      check();
    });
  }

  /** Sum of the values (or histogram counts with `counts`) of `name` whose attributes match. */
  total(
    name: string,
    match: Record<string, string | number | boolean> = {},
    counts = false,
  ): number {
    return (this.latest.get(name) ?? [])
      .filter((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v))
      .reduce((sum, p) => sum + (counts ? p.count : p.value), 0);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }

  #take(body: OtlpExport): void {
    this.exports++;
    for (const resource of body.resourceMetrics ?? []) {
      for (const scope of resource.scopeMetrics ?? []) {
        for (const metric of scope.metrics ?? []) {
          const data = metric.sum ?? metric.gauge ?? metric.histogram;
          if (data === undefined) continue;
          this.latest.set(
            metric.name,
            data.dataPoints.map((p) => ({
              attributes: Object.fromEntries(
                (p.attributes ?? []).map(({ key, value }) => [key, plain(value)]),
              ),
              value: metric.histogram ? p.sum ?? 0 : Number(p.asInt ?? p.asDouble ?? 0),
              count: metric.histogram ? Number(p.count ?? 0) : 1,
              unit: metric.unit ?? "",
            })),
          );
        }
      }
    }
    this.#changes.dispatchEvent(new Event("export"));
  }
}

function plain(value: OtlpValue): string | number | boolean {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  return value.boolValue ?? "";
}
