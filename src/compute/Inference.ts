/**
 * The engine that runs the forward-only work of a run: its evaluation (greedy decoding of the
 * graded datasets), the distillation teacher's forward pass, GRPO's rollouts, learned reward
 * models' scores and the activation and wanda scorers' calibration pass: tfjs (simmer's
 * transformer on the compute backend) or ort (ONNX Runtime on the model's ONNX graph, src/onnx,
 * with the execution provider beside the backend: WebGPU beside webgpu, else CPU). Chosen by
 * `--inference` on `run`, `resume` and `demo`, else by SIMMER_INFERENCE, else `auto`.
 *
 * `auto` is the engine measured faster for the backend: ort beside the wasm and cpu backends
 * (the demo's evaluation on 2 cores took half the time: see the README's *Exporting to ONNX*),
 * tfjs beside tensorflow and webgpu (GPU backends; ONNX Runtime's WebGPU provider was faster on
 * lavapipe, but neither has been measured on a real GPU).
 */
import { Config, Effect } from "effect"

export const InferenceEngines = ["tfjs", "ort"] as const
export type InferenceEngine = (typeof InferenceEngines)[number]

export const InferenceChoices = ["auto", ...InferenceEngines] as const
export type InferenceChoice = (typeof InferenceChoices)[number]

/** SIMMER_INFERENCE, else auto; another value is a configuration error. */
export const configuredInference = Config.Literals(InferenceChoices, "SIMMER_INFERENCE").pipe(Config.withDefault<InferenceChoice>("auto"))

/** What `auto` means beside a backend (a BackendName, or tfjs's name of the current one). */
export const autoInference = (backend: string): InferenceEngine => (backend === "tensorflow" || backend === "webgpu" ? "tfjs" : "ort")

/** The engine asked for (else SIMMER_INFERENCE, else auto) beside `backend`; a bad SIMMER_INFERENCE ends the caller with a message naming it. */
export const resolveInference = (choice: InferenceChoice | undefined, backend: string): Effect.Effect<InferenceEngine> => {
  const configured: Effect.Effect<InferenceChoice, Config.ConfigError> = configuredInference
  return (choice !== undefined ? Effect.succeed(choice) : configured).pipe(
    Effect.mapError((error) => new Error(`SIMMER_INFERENCE must be one of ${InferenceChoices.join(", ")}: ${String(error)}`)),
    Effect.orDie,
    Effect.map((chosen) => (chosen === "auto" ? autoInference(backend) : chosen))
  )
}
