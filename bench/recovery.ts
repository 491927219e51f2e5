/**
 * How well each recovery method brings a pruned model back, for the same wall-clock budget:
 * from one checkpoint of the bundled base model pruned one-shot (wanda, calibrated on arith) to
 * at most 50% of its non-embedding parameters, recover with
 *
 *   sft              SFT on arith (completion tokens), the demo's tuner
 *   distill          distillation from the unpruned model on arith (completion tokens)
 *   sft+grpo         SFT for half the budget, then GRPO with the arith rule reward (PTL's CPT-then-RL)
 *   distill-general  distillation from the unpruned model on general text (every token)
 *
 * then report accuracy on arith and program (test split), steps, tokens and, for GRPO, rollout
 * tokens per second. The tuners run through the Tuner interface, exactly as a plan runs them.
 *
 * The budget is CPU seconds of this process, worker threads included: on a machine others share
 * (this one: two cores, several engineers' tests and benchmarks), wall-clock seconds change with
 * their load from minute to minute, CPU seconds much less. Every method runs on one thread by
 * default (`--workers 1` for SFT's gradients; distillation and GRPO compute in this thread), so
 * the budget is also what an idle core gives in wall-clock seconds. Each phase's step count
 * comes from a probe of its CPU seconds per step; the JSON gives the CPU and wall seconds each
 * phase really took.
 */
import { Effect, Layer, Schema } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { disposeCheckpoint, loadCheckpoint } from "../src/io/CheckpointReader.ts"
import { evaluateDataset } from "../src/eval/Evaluate.ts"
import type { Model } from "../src/model/Model.ts"
import { countParams, disposeParams, paramSpecs } from "../src/model/Params.ts"
import { ruleReward } from "../src/reward/RuleReward.ts"
import type { BackendName } from "../src/compute/Backend.ts"
import { Compute } from "../src/services/Compute.ts"
import type { Dataset } from "../src/services/Datasets.ts"
import { Gradients } from "../src/services/Gradients.ts"
import { builtinTask } from "../src/tasks/Builtin.ts"
import { paramsFrom } from "../src/tune/TunerState.ts"
import { DistillConfig, distillTuner } from "../src/tune/Distill.ts"
import { GrpoConfig, grpoTuner } from "../src/tune/Grpo.ts"
import { SftConfig, sftTuner } from "../src/tune/Sft.ts"
import type { TuneContext, Tuner } from "../src/tune/Tuner.ts"
import { loadTokenizer } from "../src/io/Tokenizer.ts"
import { type Benchmark, benchRoom, intOption, listOption, machineInfo, median, type Options, progress, round, run, useBackend } from "./common.ts"
import { taskDataset } from "../src/services/DatasetsInMemory.ts"

const simmer = fileURLToPath(new URL("../bin/simmer.js", import.meta.url))

const spawnSimmer = (args: ReadonlyArray<string>): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [simmer, ...args], { stdio: ["ignore", "ignore", "inherit"] })
    child.on("error", reject)
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`simmer ${args[0]} exited with ${code}`))))
  })

const task = (name: "arith" | "program" | "general") => taskDataset(builtinTask({ task: name, seed: 1 }))

/** The demo's SFT settings; distillation and GRPO use the same batch and the learning rates measured to work here. */
export const recoveryTuners = {
  sft: Schema.decodeUnknownSync(SftConfig)({ kind: "sft", batchSize: 32, lr: 3e-4 }),
  distill: Schema.decodeUnknownSync(DistillConfig)({ kind: "distill", batchSize: 32, lr: 3e-4 }),
  grpo: Schema.decodeUnknownSync(GrpoConfig)({ kind: "grpo", prompts: 8, rollouts: 8, maxNewTokens: 48, lr: 3e-5 })
}

type Phase = { readonly tuner: Tuner<unknown, Gradients>; readonly data: Dataset; readonly share: number }

const methods: Record<string, ReadonlyArray<Phase>> = {
  sft: [{ tuner: sftTuner(recoveryTuners.sft), data: task("arith"), share: 1 }],
  distill: [{ tuner: distillTuner(recoveryTuners.distill), data: task("arith"), share: 1 }],
  "sft+grpo": [
    { tuner: sftTuner(recoveryTuners.sft), data: task("arith"), share: 0.5 },
    { tuner: grpoTuner(recoveryTuners.grpo, Effect.succeed(ruleReward("arith"))), data: task("arith"), share: 0.5 }
  ],
  "distill-general": [{ tuner: distillTuner(recoveryTuners.distill), data: task("general"), share: 1 }]
}

/** CPU seconds this process has used, every thread included. */
const cpuSeconds = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1e6
}

const copyOf = (model: Model): Model => {
  const specs = paramSpecs(model.config)
  return { config: model.config, params: paramsFrom(model.config, specs.map((s) => s.get(model.params).clone())) }
}

export const recovery: Benchmark = {
  summary: "recovery of a one-shot 50%-pruned bundled model by SFT, distillation, SFT+GRPO and distillation on general text, same wall-clock budget each",
  usage: "recovery [--backend wasm] [--seconds 240] [--examples 500] [--methods sft,distill,sft+grpo,distill-general] [--workers 1] [--dir DIR]",
  options: ["backend", "seconds", "examples", "methods", "workers", "dir"],
  run: async (options: Options) => {
    const backendName = options.get("backend") ?? "wasm"
    const backend = await useBackend(backendName)
    const room = await benchRoom()
    const budget = intOption(options, "seconds", 240)
    const examples = intOption(options, "examples", 500)
    const workers = intOption(options, "workers", 1)
    const chosen = listOption(options, "methods", Object.keys(methods))
    for (const m of chosen) if (!(m in methods)) throw new Error(`recovery: unknown method ${m} (known: ${Object.keys(methods).join(", ")})`)
    const dir = options.get("dir") ?? mkdtempSync(join(tmpdir(), "simmer-recovery-"))
    const prunedDir = join(dir, "pruned")
    progress(`recovery: pruning models/base one-shot to ≤50% of its non-embedding parameters → ${prunedDir}`)
    await spawnSimmer(["prune", "models/base", "--out", prunedDir, "--keep-params", "0.5", "--scorer", "wanda", "--calibration", "arith", "--backend", backendName, "--replace"])
    const original = await run(loadCheckpoint("models/base"))
    const pruned = await run(loadCheckpoint(prunedDir))
    const tokenizer = await run(loadTokenizer("models/base"))
    const compute = Layer.succeed(Compute, Compute.of({ backend: backendName as BackendName, description: backend }))
    const gradients = (workers > 1 ? Gradients.layerDataParallel({ workers }) : Gradients.layerLocal).pipe(Layer.provide(compute))
    const evaluation = { arith: task("arith"), program: task("program") }
    const accuracyOf = async (model: Model) => {
      const out: Record<string, number> = {}
      for (const [name, dataset] of Object.entries(evaluation)) {
        const m = await run(evaluateDataset(model.config, model.params, tokenizer, dataset, { examples, batchSize: 100, maxSeqLen: 128, room }))
        out[name] = round(m.accuracy!, 4)
      }
      return out
    }
    const contextFor = (phase: Phase, steps: number): TuneContext => ({
      iteration: 1,
      steps,
      seed: 1,
      tokenizer,
      datasets: [phase.data],
      chunk: 1,
      original,
      room
    })

    /** Tunes `model` (consumed) with `phase` for `steps` steps; the tuned model, CPU and wall seconds, tokens and metrics. */
    const tune = (model: Model, phase: Phase, steps: number) =>
      Effect.scoped(Effect.gen(function*() {
        const started = performance.now()
        const cpuStarted = cpuSeconds()
        const session = yield* phase.tuner.start(model, contextFor(phase, steps))
        let tokens = 0
        const metrics: Record<string, Array<number>> = {}
        while (session.stepsDone() < session.steps) {
          const done = yield* session.step
          tokens += done.tokens
          for (const [k, v] of Object.entries(done.metrics)) (metrics[k] ??= []).push(v)
        }
        const tuned = yield* session.finish
        return { model: tuned, seconds: (performance.now() - started) / 1000, cpuSeconds: cpuSeconds() - cpuStarted, tokens, metrics }
      })).pipe(Effect.provide(gradients))

    /** CPU seconds per step of a phase: a few steps of a throwaway copy (the first, warm-up step not counted). */
    const probe = async (phase: Phase, from: Model) => {
      const probeSteps = 5
      const secondsPerStep: Array<number> = []
      await run(Effect.scoped(Effect.gen(function*() {
        const session = yield* phase.tuner.start(copyOf(from), contextFor(phase, 1000))
        for (let i = 0; i < probeSteps; i++) {
          const started = cpuSeconds()
          yield* session.step
          if (i > 0) secondsPerStep.push(cpuSeconds() - started)
        }
      })).pipe(Effect.provide(gradients)))
      return median(secondsPerStep)
    }

    progress(`recovery: ${backend}, ${budget} s per method, ${examples} test examples per task`)
    const originalAccuracy = await accuracyOf(original)
    const prunedAccuracy = await accuracyOf(pruned)
    progress(`  original ${JSON.stringify(originalAccuracy)}, pruned ${JSON.stringify(prunedAccuracy)}`)
    const results: Array<Record<string, unknown>> = []
    for (const name of chosen) {
      let model = copyOf(pruned)
      const phases: Array<Record<string, unknown>> = []
      for (const phase of methods[name]) {
        const perStep = await probe(phase, model)
        const steps = Math.max(1, Math.floor((budget * phase.share) / perStep))
        progress(`  ${name}: ${phase.tuner.kind} ${steps} steps (probe: ${round(perStep, 3)} CPU s/step)`)
        const tuned = await run(tune(model, phase, steps))
        model = tuned.model
        const rollout = tuned.metrics.rolloutTokensPerSecond
        phases.push({
          tuner: phase.tuner.kind,
          data: phase.data.name,
          steps,
          cpuSeconds: round(tuned.cpuSeconds),
          seconds: round(tuned.seconds),
          tokens: tuned.tokens,
          ...(rollout !== undefined ? { rolloutTokensPerSecond: round(median(rollout)) } : {}),
          // What a cache of the teacher's distributions could save at most (each example is seen once per tuning here).
          ...(tuned.metrics.teacherSeconds !== undefined
            ? { teacherShareOfStep: round(tuned.metrics.teacherSeconds.reduce((a, b) => a + b, 0) / tuned.seconds, 3) }
            : {}),
          ...(tuned.metrics.reward !== undefined
            ? { rewardFirst10: round(median(tuned.metrics.reward.slice(0, 10)), 3), rewardLast10: round(median(tuned.metrics.reward.slice(-10)), 3) }
            : {})
        })
      }
      const accuracy = await accuracyOf(model)
      const row = {
        method: name,
        accuracy,
        meanAccuracy: round((accuracy.arith + accuracy.program) / 2, 4),
        retainedOfOriginal: { arith: round(accuracy.arith / originalAccuracy.arith, 3), program: round(accuracy.program / originalAccuracy.program, 3) },
        cpuSeconds: round(phases.reduce((s, p) => s + (p.cpuSeconds as number), 0)),
        seconds: round(phases.reduce((s, p) => s + (p.seconds as number), 0)),
        phases
      }
      progress(`  ${name}: ${JSON.stringify(row.accuracy)} in ${row.cpuSeconds} CPU s (${row.seconds} s)`)
      results.push(row)
      disposeParams(model.config, model.params)
    }
    const best = [...results].sort((a, b) => (b.meanAccuracy as number) - (a.meanAccuracy as number))[0]
    const out = {
      benchmark: "recovery",
      machine: machineInfo(),
      backend,
      budgetCpuSecondsPerMethod: budget,
      testExamplesPerTask: examples,
      sftWorkers: workers,
      start: {
        checkpoint: prunedDir,
        nonEmbeddingParameters: countParams(pruned.config).nonEmbedding,
        shareOfOriginal: round(countParams(pruned.config).nonEmbedding / countParams(original.config).nonEmbedding, 4),
        accuracy: prunedAccuracy
      },
      original: { nonEmbeddingParameters: countParams(original.config).nonEmbedding, accuracy: originalAccuracy },
      tuners: recoveryTuners,
      results,
      best: best?.method
    }
    disposeCheckpoint(original)
    disposeCheckpoint(pruned)
    return out
  }
}
