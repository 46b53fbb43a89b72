/**
 * serve's --metrics: every line serve writes is counted as it is written
 * (src/log.ts hands it over, src/report/parse.ts reads it, counters.ts
 * counts it), and the endpoint answers with those counts and serve's gauges.
 * serve imports this file only when --metrics is given.
 */
import * as log from "../log.ts";
import { parseLine } from "../report/parse.ts";
import { Counters, type Gauges } from "./counters.ts";
import { Endpoint } from "./endpoint.ts";
import { CONTENT_TYPE, render } from "./exposition.ts";

/** The endpoint of a running serve, and how to stop it. */
export interface Live {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Listens on `hostname`:`port` (throws Deno's error when it cannot), then
 * counts every line logged from now on; `gauges` is asked at each scrape.
 */
export function live(hostname: string, port: number, gauges: () => Gauges): Live {
  const counters = new Counters();
  const endpoint = Endpoint.listen(hostname, port, {
    contentType: CONTENT_TYPE,
    body: () => render(counters.families(gauges())),
  });
  log.tap((line) => counters.count(parseLine(line)));
  return {
    port: endpoint.port,
    close: async () => {
      log.tap(undefined);
      await endpoint.close();
    },
  };
}
