/**
 * The memory sampler's thread: on a SamplerRequest, samples the tree every
 * intervalMs; on "stop", posts every sample back. See startSampler in proc.ts.
 */
import { type Sample, sample, type SamplerRequest } from "./proc.ts";

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<SamplerRequest | "stop">) => void) | null;
  postMessage(samples: Sample[]): void;
};

const samples: Sample[] = [];
let stopped = false;
let wake: (() => void) | undefined;

async function run(r: SamplerRequest): Promise<void> {
  const t0 = performance.now();
  while (!stopped) {
    const next = performance.now() + r.intervalMs;
    samples.push(await sample(r.target, t0));
    const leftMs = next - performance.now();
    if (!stopped && leftMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, leftMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
  scope.postMessage(samples);
}

scope.onmessage = (e) => {
  if (e.data === "stop") {
    stopped = true;
    wake?.();
  } else {
    run(e.data);
  }
};
