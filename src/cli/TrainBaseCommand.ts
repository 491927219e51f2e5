/**
 * `simmer train-base`: trains the bundled base model from scratch with the recipe in
 * src/tune/BaseTraining.ts, evaluates it on the built-in tasks' test splits and saves it as a
 * Hugging Face checkpoint with its character tokenizer.
 *
 * SIGINT/SIGTERM stop it at the next step boundary with its state saved beside the output
 * (`<out>.training`, see BaseTrainingResume.ts) and exit 75; the same command continues it
 * exactly. The state is also saved every `--save-every` steps, against a crash.
 */
import { isDeepStrictEqual } from "node:util"
import * as tf from "@tensorflow/tfjs"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { loadCheckpoint } from "../io/CheckpointReader.ts"
import { saveCheckpoint } from "../io/CheckpointWriter.ts"
import { newHfConfig } from "../io/NewConfig.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { countParams, disposeParams } from "../model/Params.ts"
import { Compute } from "../services/Compute.ts"
import { Datasets } from "../services/Datasets.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { type EvalMetrics, evaluateDataset } from "../eval/Evaluate.ts"
import { disposeAdamW } from "../tune/AdamW.ts"
import {
  baseModelConfig,
  baseTasks,
  baseTokenizer,
  baseTrainingStep,
  type BaseRecipe,
  defaultBaseRecipe,
  defaultBatchSize,
  defaultProgramBatchSize,
  formatTaskMix,
  initBaseTraining,
  mixTasks,
  parseTaskMix
} from "../tune/BaseTraining.ts"
import { Gradients } from "../services/Gradients.ts"
import type { TaskName } from "../tasks/Task.ts"
import { pathExists } from "../io/AtomicWrite.ts"
import { loadTrainingState, lockTraining, removeTrainingState, saveTrainingState, trainingStateDir } from "../tune/BaseTrainingResume.ts"
import { backendFlag, jsonFlag, seedFlag, withRange, withShownDefault, workersFlag } from "./Flags.ts"
import { ExitCode, InvalidArguments } from "./Output.ts"
import { makeProgress } from "./Progress.ts"
import { stoppable } from "../pipeline/Stoppable.ts"

const int = (name: string, fallback: number, description: string, min = 1) =>
  Flag.Int(name).pipe(Flag.withDescription(description), withRange({ min }), withShownDefault(fallback))

/** The weights of `--init`, checked to have the recipe's shape. */
const initialWeights = (dir: string | undefined, config: ModelConfig) =>
  Effect.gen(function*() {
    if (dir === undefined) return undefined
    const checkpoint = yield* loadCheckpoint(dir)
    if (!isDeepStrictEqual(checkpoint.config, config)) {
      disposeParams(checkpoint.config, checkpoint.params)
      return yield* new InvalidArguments({
        message: `--init ${dir} has another shape than the recipe (${describeShape(checkpoint.config)} vs ${describeShape(config)}); ` +
          `pass the same --hidden, --layers, --heads, --kv-heads and --intermediate it was trained with.`
      })
    }
    yield* Effect.logInfo(`continuing from the weights of ${dir}`)
    return checkpoint.params
  })

const describeShape = (c: ModelConfig) => {
  const l = c.layers[0]
  return `hidden ${c.hiddenSize}, ${c.layers.length} layers, ${l.numHeads}/${l.numKeyValueHeads} heads, MLP ${l.intermediateSize}`
}

export const trainBaseCommand = Command.make(
  "train-base",
  {
    out: Flag.String("out").pipe(Flag.withDescription("Folder to write the checkpoint to."), withShownDefault("models/base")),
    steps: int("steps", defaultBaseRecipe.steps, "Optimizer steps."),
    seed: seedFlag("Seed for weights, data mix and examples.", defaultBaseRecipe.seed),
    tasks: Flag.String("tasks").pipe(
      Flag.withDescription("The built-in tasks to train on, comma separated, each with an optional =weight (default 1): how often its batches come. `all` adds every task not named before it."),
      withShownDefault(formatTaskMix(defaultBaseRecipe.mix))
    ),
    batchSize: int("batch-size", defaultBatchSize, "Sequences per step of every task but program."),
    programBatchSize: int("program-batch-size", defaultProgramBatchSize, "Sequences per step of program (shorter examples)."),
    lr: Flag.Finite("lr").pipe(
      Flag.withDescription("Peak learning rate."),
      withRange({ min: 0, minExclusive: true }, "number"),
      withShownDefault(defaultBaseRecipe.peakLr)
    ),
    hidden: int("hidden", defaultBaseRecipe.hiddenSize, "hidden_size."),
    layers: int("layers", defaultBaseRecipe.numLayers, "num_hidden_layers."),
    heads: int("heads", defaultBaseRecipe.numHeads, "num_attention_heads."),
    kvHeads: int("kv-heads", defaultBaseRecipe.numKeyValueHeads, "num_key_value_heads."),
    intermediate: int("intermediate", defaultBaseRecipe.intermediateSize, "intermediate_size (MLP width)."),
    evalExamples: int("eval-examples", 500, "Test examples per task for the final evaluation."),
    evalEvery: int("eval-every", 500, "Steps between quick evaluations (64 examples per task); 0 disables.", 0),
    saveEvery: int("save-every", 250, "Steps between saves of the training state (weights, optimizer, step) to <out>.training, against a crash; 0 saves only when stopped.", 0),
    init: Flag.String("init").pipe(
      Flag.withDescription(
        "Continue from this checkpoint's weights (the recipe's shape) with a fresh optimizer and schedule instead of " +
          "a new initialisation. Pass a different --seed than its first run, so the steps see new examples. " +
          "(A stopped train-base needs no --init: the same command continues it from <out>.training.)"
      ),
      Flag.optional
    ),
    replace: Flag.Boolean("replace").pipe(Flag.withDescription("Replace --out if it exists."), Flag.withDefault(false)),
    workers: workersFlag,
    json: jsonFlag,
    backend: backendFlag
  },
  Effect.fnUntraced(function*(input) {
    yield* Compute
    const datasets = yield* Datasets
    const { room } = yield* DeviceMemory
    const gradients = yield* Gradients
    const mix = parseTaskMix(input.tasks)
    if ("problem" in mix) return yield* new InvalidArguments({ message: `--tasks ${input.tasks}: ${mix.problem}.` })
    const recipe: BaseRecipe = {
      ...defaultBaseRecipe,
      seed: input.seed,
      steps: input.steps,
      batchSizes: Object.fromEntries(Object.keys(mix).map((task) => [task, task === "program" ? input.programBatchSize : input.batchSize])),
      mix,
      peakLr: input.lr,
      hiddenSize: input.hidden,
      numLayers: input.layers,
      numHeads: input.heads,
      numKeyValueHeads: input.kvHeads,
      intermediateSize: input.intermediate
    }
    const config = baseModelConfig(recipe)
    const tokenizer = baseTokenizer()
    const taskList = mixTasks(recipe)
    const tasks = baseTasks(recipe.seed, taskList)
    const init = Option.getOrUndefined(input.init)
    // An existing result is refused before hours of training, not after.
    if (!input.replace && (yield* pathExists(input.out))) {
      return yield* new InvalidArguments({ message: `${input.out} already exists; choose another --out or pass --replace.` })
    }
    yield* lockTraining(input.out)
    const stateDir = trainingStateDir(input.out)
    const settings = { recipe, init: init ?? null }
    const resumed = yield* loadTrainingState(stateDir, config, settings)
    yield* Effect.logInfo(
      `training a ${countParams(config).total.toLocaleString("en-US")}-parameter base model for ${recipe.steps} steps ` +
        `(seed ${recipe.seed}, tasks ${formatTaskMix(recipe.mix)}, batch ${input.batchSize} (program ${input.programBatchSize}), lr ${recipe.peakLr}; gradients ${gradients.description})`
    )
    if (resumed !== undefined) yield* Effect.logInfo(`continuing the stopped training in ${stateDir} at step ${resumed.state.step}`)
    let state = resumed?.state ?? initBaseTraining(recipe, yield* initialWeights(init, config))
    const evaluate = (task: TaskName, examples: number) =>
      Effect.gen(function*() {
        const dataset = yield* datasets.open({ task, seed: recipe.seed })
        return yield* evaluateDataset(config, state.params, tokenizer, dataset, {
          examples,
          batchSize: 64,
          maxSeqLen: recipe.maxSeqLen,
          room
        })
      })
    const graded = taskList.filter((task) => task !== "general")
    const started = performance.now()
    const tokensBefore = resumed?.tokens ?? 0
    let tokens = tokensBefore
    // Everything a stop does happens inside: an interrupted command ends when the work does.
    const stopped = yield* stoppable((stopRequested) =>
      Effect.gen(function*() {
        const progress = makeProgress("train-base", recipe.steps, { from: state.step })
        while (state.step < recipe.steps) {
          if (yield* stopRequested) {
            yield* saveTrainingState(stateDir, config, state, { tokens, settings })
            progress.finish(`stopped at step ${state.step} of ${recipe.steps}; its state is saved in ${stateDir}`)
            disposeParams(config, state.params)
            disposeAdamW(state.optimizer)
            yield* Console.error(`interrupted: run the same command to continue from step ${state.step} (exit code ${ExitCode.preempted})`)
            process.exitCode = ExitCode.preempted
            return true
          }
          const { state: next, report } = yield* baseTrainingStep(recipe, tasks, state)
          state = next
          tokens += report.tokens
          const seconds = (performance.now() - started) / 1000
          progress.update(state.step, {
            loss: report.loss.toFixed(3),
            task: report.task.padEnd(7),
            "tok/s": ((tokens - tokensBefore) / seconds).toFixed(0)
          })
          if (input.saveEvery > 0 && state.step % input.saveEvery === 0 && state.step < recipe.steps) {
            yield* saveTrainingState(stateDir, config, state, { tokens, settings })
          }
          if (input.evalEvery > 0 && state.step % input.evalEvery === 0 && state.step < recipe.steps && graded.length > 0) {
            const scores: Array<string> = []
            for (const task of graded) scores.push(`${task} ${((yield* evaluate(task, 64)).accuracy! * 100).toFixed(1)}%`)
            yield* Effect.logInfo(`step ${state.step}: ${scores.join(", ")} (64 test examples each)`)
          }
        }
        const trainSeconds = (performance.now() - started) / 1000
        progress.finish(`trained ${recipe.steps} steps in ${(trainSeconds / 60).toFixed(1)} min (${((tokens - tokensBefore) / trainSeconds).toFixed(0)} tokens/s)`)
        return false
      })
    )
    if (stopped) return
    const trainSeconds = (performance.now() - started) / 1000
    const metrics: Record<string, EvalMetrics> = {}
    for (const task of taskList) {
      metrics[task] = yield* evaluate(task, task === "general" ? Math.min(input.evalExamples, 200) : input.evalExamples)
    }
    const saved = yield* saveCheckpoint(input.out, {
      config,
      hfConfig: newHfConfig(config, { bos: tokenizer.bosId, eos: tokenizer.eosId, pad: tokenizer.padId }),
      params: state.params,
      dtype: "F32",
      generationConfig: { bos_token_id: tokenizer.bosId, eos_token_id: tokenizer.eosId, pad_token_id: tokenizer.padId },
      extraFiles: Object.entries(tokenizer.files()).map(([name, content]) => ({ name, content })),
      onExisting: input.replace ? "replace" : "fail"
    })
    yield* removeTrainingState(stateDir)
    disposeParams(config, state.params)
    disposeAdamW(state.optimizer)
    const summary = {
      checkpoint: saved.dir,
      recipe,
      parameters: countParams(config),
      trainSeconds,
      tokensPerSecond: (tokens - tokensBefore) / trainSeconds,
      metrics,
      tensorsLeft: tf.memory().numTensors
    }
    if (input.json) yield* Console.log(JSON.stringify(summary, null, 2))
    else {
      yield* Console.log(`saved ${saved.dir}`)
      for (const task of taskList) {
        const m = metrics[task]
        yield* Console.log(
          task === "general"
            ? `general perplexity ${m.perplexity!.toFixed(3)}`
            : `${task} ${tasks[task]!.metric} ${(m.accuracy! * 100).toFixed(1)}% (${m.examples} test examples)`
        )
      }
    }
  }, Effect.scoped)
).pipe(
  Command.withDescription("Train the bundled base model from scratch on the built-in tasks, evaluate it and save it."),
  Command.withExamples([{ command: "simmer train-base --out models/base --steps 3000 --seed 1", description: "The recipe of the bundled model" }])
)
