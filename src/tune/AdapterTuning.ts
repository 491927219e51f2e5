/**
 * SFT / continual pre-training through low-rank adapters (a plan's `tuner.adapter`): the model's
 * weights stay frozen, rank-r adapters on the chosen projections are trained with AdamW (same
 * schedule, clipping and data order as full SFT), and `finish` merges them into the weights, so
 * every stage the loop writes is a plain Hugging Face checkpoint. Gradients are taken block by
 * block with gradient checkpointing and the LM head in vocabulary chunks (Adapters.ts), so a
 * step needs one block's activations and the optimizer state of the adapters only: tuning a
 * 0.5B model fits the wasm heap, where full tuning's 16 bytes per parameter do not.
 *
 * The snapshot holds the adapters and their moments beside the step and data cursor; `current`
 * is the frozen base, so a tuning interrupted mid-way resumes from base + snapshot exactly.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Result, Schema } from "effect"
import {
  type Adapters,
  type AdapterSpec,
  adapterTensors,
  blockwiseAdapterGradients,
  disposeAdapters,
  initAdapters,
  mergeAdapters,
  withTensors
} from "../model/Adapters.ts"
import { lossBatch } from "../model/Blockwise.ts"
import { readFloats } from "../model/Read.ts"
import type { Model } from "../model/Model.ts"
import { disposeParams } from "../model/Params.ts"
import { residentSource } from "../model/WeightSource.ts"
import type { MemoryBudgetExceeded } from "../model/Footprint.ts"
import { encodeExample } from "../tasks/Encode.ts"
import { type AdamWState, adamWStep, disposeAdamW, initAdamW } from "./AdamW.ts"
import { buildBatch, type DataCursor, startCursor, takeExamples } from "./Batches.ts"
import { clipByGlobalNorm } from "./ClipGrad.ts"
import { learningRate } from "./Schedule.ts"
import type { SftConfig } from "./Sft.ts"
import { trainOptions } from "./Sft.ts"
import { NonFiniteLoss } from "./Trainer.ts"
import { InvalidTunerState, type TuneContext, type Tuner, type TunerSession, type TunerSnapshot } from "./Tuner.ts"
import type { NamedTensor } from "../io/Safetensors.ts"
import { CursorSnapshotState } from "./TunerState.ts"
import { drawTrainingExamples, type NoTrainingData } from "./TuningData.ts"
import { adapterTuningFootprint } from "./TuningMemory.ts"

const encodeState = Schema.encodeSync(CursorSnapshotState)
const decodeState = Schema.decodeUnknownResult(CursorSnapshotState)

export type AdapterTuningError = NonFiniteLoss | NoTrainingData | MemoryBudgetExceeded

interface AdapterTrainer {
  readonly adapters: Adapters
  readonly optimizer: AdamWState
  readonly cursor: DataCursor
}

export const adapterTuner = (config: SftConfig, spec: AdapterSpec): Tuner<AdapterTuningError> => {
  const open = Effect.fn("AdapterTuning.open")(function*(model: Model, context: TuneContext, initial: AdapterTrainer) {
    const examples = yield* drawTrainingExamples(context, context.steps * config.batchSize).pipe(
      Effect.tapError(() =>
        Effect.sync(() => {
          disposeAdapters(initial.adapters)
          disposeAdamW(initial.optimizer)
        })
      )
    )
    const data = examples.map((e) => encodeExample(context.tokenizer, e))
    const options = trainOptions(config, context.steps, context.tokenizer.padId ?? 0)
    const shape = model.config
    const source = residentSource(shape, model.params, context.room)
    let trainer = initial
    let handedOver = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        disposeAdamW(trainer.optimizer)
        disposeAdapters(trainer.adapters)
        if (!handedOver) disposeParams(shape, model.params)
      })
    )
    const step = Effect.gen(function*() {
      const taken = takeExamples(data, trainer.cursor, options.batchSize)
      const batch = lossBatch(buildBatch(taken.batch, options.seqLen, options.padId, options.promptMasked))
      const { losses, grads } = yield* blockwiseAdapterGradients(source, trainer.adapters, [batch])
      const loss = losses[0]
      const stepNumber = trainer.optimizer.step + 1
      if (!Number.isFinite(loss)) {
        tf.dispose(grads)
        return yield* new NonFiniteLoss({
          step: stepNumber,
          loss,
          message: `Adapter tuning loss became ${loss} at step ${stepNumber}; the adapters of the previous step are kept. ` +
            "Lower the learning rate, or check the data and the model for NaN/Inf values."
        })
      }
      const clipped = yield* clipByGlobalNorm(grads, options.maxGradNorm)
      tf.dispose(grads)
      const lr = learningRate(options.schedule, trainer.optimizer.step)
      const old = adapterTensors(trainer.adapters).map((t) => t.tensor)
      const updated = adamWStep(options.optimizer, trainer.optimizer, old, clipped.grads, lr)
      tf.dispose([...clipped.grads, ...old])
      trainer = { adapters: withTensors(trainer.adapters, updated.params), optimizer: updated.state, cursor: taken.cursor }
      return {
        step: stepNumber,
        loss,
        tokens: batch.weights.reduce((a, b) => a + b, 0),
        metrics: { lr, gradNorm: clipped.norm }
      }
    }).pipe(Effect.withSpan("AdapterTuning.step"))
    const session: TunerSession<AdapterTuningError> = {
      steps: context.steps,
      stepsDone: () => trainer.optimizer.step,
      step: Effect.uninterruptible(step),
      current: () => model,
      snapshot: Effect.gen(function*(): Effect.fn.Return<TunerSnapshot> {
        const named = adapterTensors(trainer.adapters)
        const { m, v } = trainer.optimizer
        const state = encodeState({ step: trainer.optimizer.step, cursor: trainer.cursor })
        // Read in the order the tensors are listed (adapter, m, v of each), one await each.
        const tensors: Array<NamedTensor> = []
        for (let i = 0; i < named.length; i++) {
          const { name, tensor } = named[i]
          tensors.push({ name: `adapter.${name}`, shape: tensor.shape, data: yield* readFloats(tensor) })
          tensors.push({ name: `m.${name}`, shape: m[i].shape, data: yield* readFloats(m[i]) })
          tensors.push({ name: `v.${name}`, shape: v[i].shape, data: yield* readFloats(v[i]) })
        }
        return { state, tensors }
      }),
      finish: Effect.sync(() => {
        handedOver = true
        return { config: shape, params: mergeAdapters(model.params, trainer.adapters, { consume: true }) }
      })
    }
    return session
  })

  return {
    kind: config.kind,
    footprint: (shape) => adapterTuningFootprint(shape, config.batchSize, config.maxSeqLen, spec),
    adapter: { rank: spec.rank, targets: spec.targets },
    start: (model, context) =>
      Effect.suspend(() => {
        const adapters = initAdapters(model.config, spec, context.seed)
        return open(model, context, {
          adapters,
          optimizer: initAdamW(adapterTensors(adapters).map((t) => t.tensor)),
          cursor: startCursor(context.seed)
        })
      }),
    resume: (model, snapshot, context) =>
      Effect.gen(function*() {
        const invalid = (why: string) =>
          new InvalidTunerState({ kind: config.kind, message: `The saved ${config.kind} adapter tuning state cannot be resumed: ${why}.` })
        const decoded = decodeState(snapshot.state)
        if (Result.isFailure(decoded)) return yield* invalid("its step and data cursor do not decode")
        const byName = new Map(snapshot.tensors.map((t) => [t.name, t]))
        // The expected names and shapes come from fresh adapters of the same spec.
        const template = initAdapters(model.config, spec, 0)
        const named = adapterTensors(template)
        const problem = named.flatMap(({ name, tensor }) =>
          ["adapter", "m", "v"].map((prefix) => {
            const t = byName.get(`${prefix}.${name}`)
            if (t === undefined) return `${prefix}.${name} is missing`
            return t.shape.join(",") === tensor.shape.join(",") ? undefined : `${prefix}.${name} has shape [${t.shape}], expected [${tensor.shape}]`
          })
        ).find((p) => p !== undefined)
        disposeAdapters(template)
        if (problem !== undefined) return yield* invalid(problem)
        const load = (prefix: string) => named.map(({ name }) => {
          const t = byName.get(`${prefix}.${name}`)!
          return tf.tensor(t.data, [...t.shape])
        })
        const { step, cursor } = decoded.success
        return yield* open(model, context, {
          adapters: withTensors(template, load("adapter")),
          optimizer: { step, m: load("m"), v: load("v") },
          cursor: cursor as DataCursor
        })
      })
  }
}
