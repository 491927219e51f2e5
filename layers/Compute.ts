/**
 * Live Compute: the backend a choice names (else SIMMER_BACKEND, else the first of tensorflow,
 * wasm, cpu that initialises), chosen and initialised when the layer is built.
 */
import { Layer } from "effect"
import { selectBackend } from "../src/compute/Backend.ts"
import { type BackendUnavailable, Compute } from "../src/services/Compute.ts"

export const ComputeLive = (choice?: string): Layer.Layer<Compute, BackendUnavailable> =>
  Layer.effect(Compute, selectBackend(choice))
