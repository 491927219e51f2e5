/**
 * Flags several commands share, so they read and document the same everywhere.
 */
import { Config } from "effect"
import { Flag } from "effect/cli"

export const backendFlag = Flag.Literals("backend", ["auto", "tensorflow", "wasm", "cpu"]).pipe(
  Flag.withDescription(
    "TensorFlow.js backend: tensorflow (tfjs-node-gpu, else tfjs-node; installed separately), wasm, cpu (slow, " +
      "reference). Default: $SIMMER_BACKEND, else auto = the first of tensorflow, wasm, cpu that initialises."
  ),
  Flag.optional
)

export const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription("Print one JSON document on stdout instead of text."),
  Flag.withDefault(false)
)

export const skipInvalidFlag = Flag.Boolean("skip-invalid").pipe(
  Flag.withDescription("Skip (and count) JSONL lines that do not parse instead of failing."),
  Flag.withDefault(false)
)

export const workersFlag = Flag.Int("workers").pipe(
  Flag.withDescription(
    "Worker threads computing gradients in parallel (data parallel, each with its own engine of the same backend); " +
      "1 computes in this thread. Default: $SIMMER_WORKERS, else 2."
  ),
  Flag.withFallbackConfig(Config.Int("SIMMER_WORKERS")),
  Flag.withDefault(2)
)

export const memoryFlag = Flag.Finite("memory").pipe(
  Flag.withDescription(
    "Device memory simmer may use, in GiB: plans whose estimated peak exceeds it are refused before any work. " +
      "Default: $SIMMER_MEMORY_GB, else the backend's limit (wasm: 90% of its 4 GiB heap; cpu: 80% of RAM; " +
      "give it for a GPU, whose memory tfjs cannot read)."
  ),
  Flag.optional
)
