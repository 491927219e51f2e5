/**
 * The loop's control flow with an injected evaluation: gates, rollback with halved steps,
 * a user-defined stage with its own typed error, and flat tensor counts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer, Ref, Schema, Stream, Tracer } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { beforeAll } from "vitest"
import { newHfConfig } from "../../src/io/NewConfig.ts"
import { countParams, disposeParams, initParams } from "../../src/model/Params.ts"
import type { Model } from "../../src/model/Model.ts"
import { type LoopStart, runLoop } from "../../src/pipeline/Loop.ts"
import { borrowModel, holdModel } from "../../src/pipeline/Models.ts"
import type { ModelState, Stage } from "../../src/pipeline/ModelState.ts"
import type { LoopUpdate } from "../../src/pipeline/RunUpdate.ts"
import { parsePlan } from "../../src/pipeline/Plan.ts"
import { calibrationData, makePruneFn } from "../../src/pipeline/Pruning.ts"
import { builtinTask } from "../../src/tasks/Builtin.ts"
import { baseTokenizer } from "../../src/tune/BaseTraining.ts"
import { type SftConfig, sftTuner } from "../../src/tune/Sft.ts"
import type { TunerConfig } from "../../src/tune/Tuners.ts"
import type { Tuner, TunerSession } from "../../src/tune/Tuner.ts"
import { plannedTuners } from "../../src/pipeline/Plan.ts"
import { localGradients, tinyConfig, useBackend } from "../helpers/backend.ts"
import { tempDir } from "../io/_support.ts"
import { unlimitedRoom } from "../helpers/room.ts"
import { taskDataset } from "../../src/services/DatasetsInMemory.ts"
import { RunStore } from "../../src/services/RunStore.ts"

beforeAll(() => useBackend("cpu"))

const tokenizer = baseTokenizer()
const config = tinyConfig({ vocabSize: tokenizer.vocabSize }, { intermediateSize: 64 })

const arith = taskDataset(builtinTask({ task: "arith" }))
const general = taskDataset(builtinTask({ task: "general" }))

/** A stand-in evaluation: "accuracy" is 1 while the MLP keeps at least `floor` neurons per layer, else 0. */
const accuracyAbove = (floor: number) => (state: ModelState) =>
  Effect.succeed({ fake: { examples: 1, accuracy: state.model.config.layers[0].intermediateSize >= floor ? 1 : 0 } })

/** These plans tune with SFT only (the loop's tests need no reward). */
const sftOnly = (config: TunerConfig): SftConfig => {
  if (config.kind !== "sft" && config.kind !== "cpt") throw new Error(`the loop tests plan SFT, not ${config.kind}`)
  return config
}

const setup = (planYaml: string, floor: number) =>
  Effect.gen(function*() {
    const plan = yield* parsePlan(planYaml, "plan.yaml")
    const original = { config, params: initParams(config, 3, 0.2) }
    return {
      plan,
      strategy: "ptl" as const,
      stageTemplate: { hfConfig: newHfConfig(config, { bos: 1, eos: 2, pad: 0 }), dtype: "F32" as const, extraFiles: [] },
      originalMetrics: { fake: { examples: 1, accuracy: 1 } },
      original,
      evaluate: accuracyAbove(floor),
      tuners: plannedTuners(plan).map((config) => ({ tuner: sftTuner(sftOnly(config)), steps: config.steps })),
      tuning: { tokenizer, datasets: [arith], freshChunks: true, seed: 1, room: unlimitedRoom },
      prune: makePruneFn(plan, yield* calibrationData(plan, tokenizer, [arith], general), unlimitedRoom)
    }
  })

const plan = (extra: string) => `
model: unused
target: { perLayer: { neurons: 16 } }
iterations: 2
scorer: activation
data: { tune: [{ task: arith }], calibration: [{ task: arith }], evaluate: [{ task: arith }], calibrationExamples: 4 }
tuner: { steps: 1, batchSize: 2, maxSeqLen: 32 }
gates: { accuracyRetained: 0.9, retries: 2 }
${extra}`

const statesOf = (updates: ReadonlyArray<LoopUpdate>): Array<ModelState> =>
  updates.flatMap((u) => (u._tag === "State" ? [u.state] : []))

/** Runs a loop to its end in the run folder `dir` and returns its states (their models are released by then). */
const collect = <E, R>(loop: Stream.Stream<LoopUpdate, E, R>, dir: string) =>
  Stream.runCollect(loop).pipe(
    Effect.map(statesOf),
    Effect.provide(Layer.merge(RunStore.layerFolder(dir), localGradients)),
    Effect.scoped
  )

const start = (s: { original: { config: typeof config; params: ReturnType<typeof initParams> } }): LoopStart =>
  ({ accepted: borrowModel(s.original), acceptedStage: "stages/ptl-000", iteration: 0 })

describe("the loop", () => {
  it.live("a failed gate rolls back and retries with half the step", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "run")
      // 64 → 16 neurons in 2 iterations: the first step (to 40) fails below 48, the halved one (to 52) passes;
      // then 52 → 16: (16 and 34 fail) and 43 fails too: retries exhausted, the run stops at 52.
      const s = yield* setup(plan(""), 48)
      const states = yield* collect(runLoop(s, start(s)), dir)
      const trace = states.map((st) => `${st.iteration}.${st.attempt} ${st.phase} ${st.model.config.layers[0].intermediateSize}`)
      expect(trace.filter((t) => t.includes("pruned") || t.includes("accepted") || t.includes("rolled-back"))).toEqual([
        "1.0 pruned 40",
        "1.0 rolled-back 64",
        "1.1 pruned 52",
        "1.1 accepted 52",
        "2.0 pruned 16",
        "2.0 rolled-back 52",
        "2.1 pruned 34",
        "2.1 rolled-back 52",
        "2.2 pruned 43",
        "2.2 rolled-back 52"
      ])
      expect(states.at(-2)?.message).toContain("no smaller step can pass")
      expect(states.at(-1)).toMatchObject({ phase: "finished", iteration: 1, targetReached: false })
      expect(states.at(-1)?.message).toContain("target not reached: stopped at")
      disposeParams(s.original.config, s.original.params)
    }), 60_000)

  it.live("names its moves and its tuner's work as spans, for a tracer", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "run")
      const names = new Set<string>()
      const tracer = Tracer.make({
        span(options) {
          names.add(options.name)
          return new Tracer.NativeSpan(options)
        }
      })
      const s = yield* setup(plan(""), 48)
      yield* collect(runLoop(s, start(s)), dir).pipe(Effect.withTracer(tracer))
      for (const name of ["Loop.prune", "Loop.tune", "Loop.step", "Loop.evaluate", "Loop.gate", "Loop.finish", "Sft.open", "Trainer.step"]) {
        expect(names, name).toContain(name)
      }
      disposeParams(s.original.config, s.original.params)
    }), 60_000)

  it.live("after a pass with a halved step, the next iteration's step grows back one halving at a time", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "run")
      // 64 → 40 and 52 fail below 55, 58 passes on attempt 2 (a quarter step). Iteration 2 is
      // scheduled to reach 16 but starts at half that step (37), not at the full one that failed.
      const s = yield* setup(plan(""), 55)
      const states = yield* collect(runLoop(s, start(s)), dir)
      const pruned = states.filter((st) => st.phase === "pruned").map((st) => `${st.iteration}.${st.attempt} ${st.model.config.layers[0].intermediateSize}`)
      expect(pruned).toEqual(["1.0 40", "1.1 52", "1.2 58", "2.0 37", "2.1 48", "2.2 53"])
      // A resumed loop (the start Run.ts builds from the accepted event) plans the same step.
      const at58 = yield* s.prune(s.original, "neurons", [58, 58], 1)
      const resumed = yield* Effect.scoped(Effect.gen(function*() {
        const accepted = yield* holdModel(at58)
        return yield* collect(
          runLoop(s, { accepted, acceptedStage: "stages/ptl-001", iteration: 1, acceptedAttempt: 2 }).pipe(Stream.take(1)),
          join(dir, "resumed")
        )
      }))
      expect(resumed[0].model.config.layers[0].intermediateSize).toBe(37)
      disposeParams(s.original.config, s.original.params)
    }), 60_000)

  it.live("a list of tuning steps gives each iteration its own budget; one-shot tunes with their sum", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "run")
      // Accuracy holds down to 30 neurons: iteration 2 is halved twice (to 34), so iteration 3,
      // beyond the list, uses its last entry.
      const s = yield* setup(plan("").replace("steps: 1,", "steps: [1, 2],"), 30)
      const tuned = (states: ReadonlyArray<ModelState>) =>
        states.filter((st) => st.phase === "tuned").map((st) => `${st.iteration}.${st.attempt} ${st.tune?.steps}`)
      const states = yield* collect(runLoop(s, start(s)), dir)
      expect(tuned(states).slice(0, 5)).toEqual(["1.0 1", "2.0 2", "2.1 2", "2.2 2", "3.0 2"])
      const oneShot = yield* collect(runLoop({ ...s, strategy: "one-shot" }, start(s)), join(dir, "one-shot"))
      expect(tuned(oneShot)).toEqual(["1.0 3"])
      disposeParams(s.original.config, s.original.params)
    }), 60_000)

  it.live("GateFailed carries the history when the plan says so", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "run")
      const s = yield* setup(plan("").replace("retries: 2 }", "retries: 1, onFailure: fail }"), 1000)
      const error = yield* Effect.flip(collect(runLoop(s, start(s)), dir))
      expect(error._tag).toBe("GateFailed")
      if (error._tag === "GateFailed") expect(error.history).toHaveLength(2)
      disposeParams(s.original.config, s.original.params)
    }), 60_000)

  it.live("a user-defined stage composes into the loop with its own typed error, and tensors stay flat", () =>
    Effect.gen(function*() {
      class QuantizeError extends Schema.TaggedError<QuantizeError>()("QuantizeError", { bits: Schema.Number, message: Schema.String }) {}
      /** Rounds every weight to `bits` bits of mantissa: a stage a user might add. */
      const roundWeights = (bits: number): Stage<QuantizeError> => (state) =>
        bits < 2
          ? Effect.fail(new QuantizeError({ bits, message: `cannot round to ${bits} bits` }))
          : Effect.sync(() => {
            const scale = 2 ** bits
            const params = state.model.params
            const round = (t: tf.Tensor) => tf.tidy(() => tf.div(tf.round(tf.mul(t, scale)), scale))
            const rounded = { ...params, norm: round(params.norm) as tf.Tensor1D }
            params.norm.dispose()
            return { ...state, model: { ...state.model, params: rounded } }
          })
      const dir = join(yield* tempDir, "run")
      const s = yield* setup(plan(""), 0)
      const before = tf.memory().numTensors
      let roundedNorm: Array<number> = []
      const states = yield* collect(
        runLoop({ ...s, afterTune: roundWeights(4) }, start(s)).pipe(
          // A state's model is valid until the next element is pulled: read it here.
          Stream.tap((u) => Effect.sync(() => {
            if (u._tag === "State" && u.state.phase === "accepted") roundedNorm = Array.from(u.state.model.params.norm.dataSync())
          }))
        ),
        dir
      )
      const last = states.at(-1)!
      expect(last.model.config.layers[0].intermediateSize).toBe(16)
      expect(roundedNorm.length).toBeGreaterThan(0)
      expect(roundedNorm.every((v) => Number.isInteger(v * 16))).toBe(true)
      expect(countParams(last.model.config).mlp).toBe(2 * 3 * 16 * 16)
      // Every model the loop made is released by the time the stream ends; only the original is left.
      expect(tf.memory().numTensors).toBe(before)
      // The error type of the user stage is part of the stream's error type.
      const failing = runLoop({ ...s, afterTune: roundWeights(1) }, start(s))
      const error = yield* Effect.flip(collect(failing, join(dir, "second")))
      expect(error._tag).toBe("QuantizeError")
      expect(tf.memory().numTensors).toBe(before)
      // Compile-time: QuantizeError is a member of the stream's error union (this line fails to type-check otherwise).
      type StreamError = typeof failing extends Stream.Stream<unknown, infer E, unknown> ? E : never
      const tracked: [QuantizeError] extends [StreamError] ? true : false = true
      expect(tracked).toBe(true)
      disposeParams(s.original.config, s.original.params)
    }), 60_000)

  it.live("a tuner of the user's own plugs in through the public types, with its state saved when the loop stops", () =>
    Effect.gen(function*() {
      /** Shrinks the final norm by 1% per step; its state is just the step count. */
      class ToyError extends Schema.TaggedError<ToyError>()("ToyError", { message: Schema.String }) {}
      const ToyState = Schema.Struct({ step: Schema.Int })
      const toy: Tuner<ToyError> = {
        kind: "toy",
        footprint: () => ({ bytes: 0, parts: {} }),
        start: (model) => open(model, 0),
        resume: (model, snapshot) => open(model, Schema.decodeUnknownSync(ToyState)(snapshot.state).step)
      }
      function open(model: Model, from: number) {
        return Effect.gen(function*() {
          let current = model
          let done = from
          let handedOver = false
          yield* Effect.addFinalizer(() => Effect.sync(() => handedOver || tf.dispose(current.params.norm)))
          const session: TunerSession<ToyError> = {
            steps: 3,
            stepsDone: () => done,
            step: Effect.sync(() => {
              const norm = tf.tidy(() => tf.mul(current.params.norm, 0.99)) as tf.Tensor1D
              current.params.norm.dispose()
              current = { ...current, params: { ...current.params, norm } }
              done++
              return { step: done, loss: 1 / done, tokens: 10, metrics: { scale: 0.99 ** done } }
            }),
            current: () => current,
            snapshot: Effect.sync(() => ({ state: Schema.encodeSync(ToyState)({ step: done }), tensors: [] })),
            finish: Effect.sync(() => {
              handedOver = true
              return current
            })
          }
          return session
        })
      }
      const dir = join(yield* tempDir, "run")
      const s = yield* setup(plan(""), 0)
      const before = tf.memory().numTensors
      const states = yield* collect(runLoop({ ...s, tuners: [{ tuner: toy, steps: 3 }] }, start(s)), dir)
      const tuned = states.filter((st) => st.phase === "tuned")
      expect(tuned.map((st) => st.tune?.kind)).toEqual(["toy", "toy"])
      expect(tuned[0].tune).toMatchObject({ steps: 3, tokens: 30, losses: [1, 1 / 2, 1 / 3], metrics: { scale: [0.99, 0.99 ** 2, 0.99 ** 3] } })
      expect(states.at(-1)?.phase).toBe("finished")
      expect(tf.memory().numTensors).toBe(before)
      // Asked to stop after its second step, the loop saves the toy's own state and ends.
      const steps = yield* Ref.make(0)
      const stopped = yield* collect(
        runLoop({ ...s, tuners: [{ tuner: toy, steps: 3 }], stopRequested: Ref.get(steps).pipe(Effect.map((n) => n >= 2)) }, start(s)).pipe(
          Stream.tap((u) => (u._tag === "Step" ? Ref.update(steps, (n) => n + 1) : Effect.void))
        ),
        join(dir, "stopped")
      )
      expect(stopped.at(-1)?.phase).toBe("interrupted")
      const saved = JSON.parse(readFileSync(join(dir, "stopped", "resume", "state.json"), "utf8"))
      expect(saved).toMatchObject({ strategy: "ptl", iteration: 1, tuner: 0, tunerKind: "toy", tunerState: { step: 2 } })
      expect(tf.memory().numTensors).toBe(before)
      disposeParams(s.original.config, s.original.params)
    }), 60_000)
})
