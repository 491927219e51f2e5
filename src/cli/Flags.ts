/**
 * Flags several commands share, so they read and document the same everywhere, and the two
 * combinators every flag with a default or a numeric range goes through, so that `--help` says
 * what an omitted flag means and which values are allowed, and the CLI refuses a value outside
 * the range before any work starts (`--batch-size 0` once hung, `--examples -3` scored 0/0).
 */
import { Config, Option } from "effect"
import { Flag, Param } from "effect/cli"
import { BackendChoices } from "../compute/Backend.ts"
import { configuredInference, InferenceChoices } from "../compute/Inference.ts"

/** The description a flag has so far (combinators wrap the flag; the description sits at its core). */
const descriptionOf = (flag: Param.Param<"flag", unknown>): string => {
  let param: Param.Param<"flag", unknown> = flag
  while (param._tag !== "Single") param = (param as Param.Map<"flag", unknown, unknown>).param
  return Option.getOrElse((param as Param.Single<"flag", unknown>).description, () => "")
}

const appendToDescription = (flag: Flag.Flag<any>, text: string): string => {
  const description = descriptionOf(flag).trim()
  return description === "" ? text : `${description} ${text}`
}

/** `Flag.withDefault`, with "Default: <shown>." added to the flag's help. */
export const withShownDefault = <const B>(value: B, shown: string = String(value)) => <A>(flag: Flag.Flag<A>): Flag.Flag<A | B> =>
  flag.pipe(Flag.withDescription(appendToDescription(flag, `Default: ${shown}.`)), Flag.withDefault(value))

/**
 * A flag that may be given any number of times, none included. (`Flag.atLeast(0)` alone would
 * do, but the CLI library's help then marks it required.)
 */
export const repeatable = <A>(flag: Flag.Flag<A>): Flag.Flag<ReadonlyArray<A>> =>
  flag.pipe(Flag.atLeast(1), Flag.optional, Flag.map(Option.getOrElse((): ReadonlyArray<A> => [])))

/** Allowed values of a numeric flag: bounds inclusive unless marked exclusive. */
export interface Range {
  readonly min?: number
  readonly max?: number
  readonly minExclusive?: boolean
  readonly maxExclusive?: boolean
}

/** "≥ 1", "> 0 and ≤ 1", ... */
export const rangeText = (range: Range): string => {
  const parts = [
    ...(range.min !== undefined ? [`${range.minExclusive ? ">" : "≥"} ${range.min}`] : []),
    ...(range.max !== undefined ? [`${range.maxExclusive ? "<" : "≤"} ${range.max}`] : [])
  ]
  return parts.join(" and ")
}

export const inRangeOf = (range: Range) => (value: number): boolean =>
  (range.min === undefined || (range.minExclusive ? value > range.min : value >= range.min)) &&
  (range.max === undefined || (range.maxExclusive ? value < range.max : value <= range.max))

/**
 * Checks a numeric flag against `range` when the command line is parsed (a usage error naming
 * the flag and the range), and adds the range to its help. `kind` names the values in both.
 */
export const withRange = (range: Range, kind: "integer" | "number" = "integer") => (flag: Flag.Flag<number>): Flag.Flag<number> => {
  const text = `${kind === "integer" ? "an integer" : "a number"} ${rangeText(range)}`
  return flag.pipe(
    Flag.withDescription(appendToDescription(flag, `Range: ${rangeText(range)}.`)),
    Flag.filter(inRangeOf(range), () => `Expected ${text}`)
  )
}

export const backendFlag = Flag.Literals("backend", BackendChoices).pipe(
  Flag.withDescription(
    "TensorFlow.js backend: tensorflow (tfjs-node-gpu, else tfjs-node; installed separately), webgpu (a GPU through " +
      "Vulkan, or lavapipe on the CPU), wasm, cpu (slow, reference). Default: $SIMMER_BACKEND, else auto = the first " +
      "of tensorflow, webgpu on a hardware GPU, wasm, cpu that initialises."
  ),
  Flag.optional
)

export const inferenceFlag = Flag.Literals("inference", InferenceChoices).pipe(
  Flag.withDescription(
    "The engine the run's forward-only work runs on (evaluation's greedy decoding of graded datasets, the distillation " +
      "teacher, GRPO's rollouts, learned reward models, the activation and wanda scorers): tfjs (simmer's transformer on --backend) or ort " +
      "(ONNX Runtime's CPU execution provider on the model's ONNX graph, built from its weights where they stand still); " +
      "perplexity, gradients and the other scorers always run on tfjs. auto: ort beside the wasm and cpu backends, tfjs beside tensorflow and webgpu."
  ),
  Flag.withFallbackConfig(configuredInference),
  withShownDefault("auto" as const, "$SIMMER_INFERENCE, else auto")
)

export const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription("Print one JSON document on stdout instead of text."),
  Flag.withDefault(false)
)

export const skipInvalidFlag = Flag.Boolean("skip-invalid").pipe(
  Flag.withDescription("Skip (and count) JSONL lines that do not parse instead of failing."),
  Flag.withDefault(false)
)

/** More worker threads than this only adds engines that compete for the same cores. */
export const maxWorkers = 64

export const workersFlag = Flag.Int("workers").pipe(
  Flag.withDescription(
    "Worker threads computing gradients in parallel (data parallel, each with its own engine of the same backend); " +
      "1 computes in this thread."
  ),
  withRange({ min: 1, max: maxWorkers }),
  Flag.withFallbackConfig(Config.Int("SIMMER_WORKERS")),
  withShownDefault(2, "$SIMMER_WORKERS, else 2")
)

export const memoryFlag = Flag.Finite("memory").pipe(
  Flag.withDescription(
    "Device memory simmer may use, in GiB: plans whose estimated peak exceeds it are refused before any work. " +
      "Default: $SIMMER_MEMORY_GB, else the backend's limit (wasm: 90% of its 4 GiB heap; cpu: 80% of RAM; " +
      "give it for a GPU, whose memory neither tfjs nor WebGPU reports)."
  ),
  withRange({ min: 0, minExclusive: true }, "number"),
  Flag.optional
)

/** A seed: any integer (built-in tasks and samplers are deterministic in it). */
export const seedFlag = (description: string, fallback: number) =>
  Flag.Int("seed").pipe(Flag.withDescription(description), withShownDefault(fallback))
