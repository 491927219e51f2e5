/**
 * `simmer prune <checkpoint> --out <dir> --keep-params <share> | --keep-units <fraction>`:
 * one-shot structured pruning of MLP neurons, key/value groups or decoder blocks, scored on
 * calibration data; writes a checkpoint that loads like the original and prints the parameter
 * counts before and after. The size is either a share of the non-embedding parameters (what a
 * plan's `target.parameters` means) or a fraction of the units: two flags, because one `--target`
 * meaning units surprised people who read it as parameters. Also the flags and loading steps
 * `simmer score` shares.
 */
import { existsSync } from "node:fs"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { listCheckpointFolder } from "../io/CheckpointFolder.ts"
import { openLazyCheckpoint } from "../io/CheckpointReader.ts"
import { TargetExists } from "../io/Errors.ts"
import { loadTokenizer } from "../io/Tokenizer.ts"
import type { ParamCounts } from "../model/Params.ts"
import { isUniform, type ModelConfig } from "../model/ModelConfig.ts"
import { loadCalibration } from "../prune/CalibrationSource.ts"
import { pruneCheckpoint } from "../prune/PruneCheckpoint.ts"
import { checkScorer, defaultScorer, scorerReads, type ScoreOptions } from "../prune/Scorers.ts"
import type { Scores, Unit } from "../prune/Scores.ts"
import type { PruneTarget } from "../prune/Schedule.ts"
import { Compute } from "../services/Compute.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { backendFlag, jsonFlag, seedFlag, skipInvalidFlag, withRange, withShownDefault } from "./Flags.ts"
import { datasetRef } from "./EvalCommand.ts"
import { InvalidArguments } from "./Output.ts"
import { makeProgress, passProgress, type Progress } from "./Progress.ts"
import { checkpointArgumentDescription, localCheckpoint } from "./CheckpointArgument.ts"
import { taskNames } from "../tasks/Task.ts"

export const checkpointArgument = Argument.String("checkpoint").pipe(
  Argument.withDescription(checkpointArgumentDescription)
)

/** The flags `prune` and `score` share: what to score, with which scorer, on which data. */
export const scoringFlags = {
  unit: Flag.Literals("unit", ["neurons", "heads", "layers"]).pipe(
    Flag.withDescription(
      "What to prune: MLP neurons, key/value groups (a KV head with its query heads), or whole decoder blocks."
    ),
    withShownDefault("neurons")
  ),
  scorer: Flag.String("scorer").pipe(
    Flag.withDescription(
      "neurons: activation (default), contrastive (the PTL reference), taylor, wanda, random; heads: contribution " +
        "(default), random; layers: block-influence (default), skip-loss, random."
    ),
    Flag.optional
  ),
  calibration: Flag.String("calibration").pipe(
    Flag.withDescription(`Calibration data: ${taskNames.join(" | ")} (built-in tasks) or a JSONL file (its calibration split).`),
    withShownDefault("arith")
  ),
  examples: Flag.Int("examples").pipe(
    Flag.withDescription("Calibration examples. Default: 64; contrastive: 10 task samples, as the reference."),
    withRange({ min: 1 }),
    Flag.optional
  ),
  general: Flag.String("general").pipe(
    Flag.withDescription("contrastive only: the general text it contrasts with (a task or JSONL file)."),
    withShownDefault("general")
  ),
  generalExamples: Flag.Int("general-examples").pipe(
    Flag.withDescription("contrastive only: general-text samples (the reference: 1000)."),
    withRange({ min: 1 }),
    withShownDefault(1000)
  ),
  topN: Flag.Int("top-n").pipe(
    Flag.withDescription("contrastive only: size of a sample's strongly-active set. Default: a tenth of the MLP width."),
    withRange({ min: 1 }),
    Flag.optional
  ),
  positions: Flag.Literals("positions", ["last", "all"]).pipe(
    Flag.withDescription("contrastive only: observe each sequence's last token (the reference) or every token."),
    withShownDefault("last")
  ),
  batchSize: Flag.Int("batch-size").pipe(
    Flag.withDescription("Calibration sequences per forward pass."),
    withRange({ min: 1 }),
    withShownDefault(16)
  ),
  seed: seedFlag("Seed of built-in calibration tasks and of the random scorer.", 1),
  skipInvalid: skipInvalidFlag,
  json: jsonFlag,
  backend: backendFlag
}

type ScoringInput = {
  readonly checkpoint: string
  readonly unit: Unit
  readonly scorer: Option.Option<string>
  readonly calibration: string
  readonly examples: Option.Option<number>
  readonly general: string
  readonly generalExamples: number
  readonly topN: Option.Option<number>
  readonly positions: "last" | "all"
  readonly batchSize: number
  readonly seed: number
  readonly skipInvalid: boolean
}

/**
 * Opens the checkpoint lazily (its shards stay open until the command's scope closes; weights
 * are read block by block as the scorer needs them) and its tokenizer, and loads the
 * calibration data the scorer needs.
 */
export const prepareScoring = Effect.fnUntraced(function*(input: ScoringInput) {
  yield* Compute // the backend is initialised before any tensor exists
  const scorer = yield* checkScorer(input.unit, Option.getOrElse(input.scorer, () => defaultScorer[input.unit]))
  // The folder, then the cheap tokenizer, then the shards' headers.
  const dir = yield* localCheckpoint(input.checkpoint)
  yield* listCheckpointFolder(dir)
  const tokenizer = yield* loadTokenizer(dir)
  const checkpoint = yield* openLazyCheckpoint(dir)
  const { room } = yield* DeviceMemory
  const examples = Option.getOrUndefined(input.examples)
  const data = yield* loadCalibration(tokenizer, scorerReads(input.unit, scorer), {
    task: datasetRef(input.calibration, input.seed, input.skipInvalid),
    general: datasetRef(input.general, input.seed, input.skipInvalid),
    generalExamples: input.generalExamples,
    batchSize: input.batchSize,
    maxSeqLen: checkpoint.config.maxPositionEmbeddings,
    ...(examples !== undefined ? { examples } : {})
  })
  const topN = Option.getOrUndefined(input.topN)
  const options: ScoreOptions = {
    seed: input.seed,
    progress: { onBlock: passProgress(`scoring ${input.unit} (${scorer}), decoder blocks`) },
    contrastive: {
      positions: input.positions,
      generalSamples: input.generalExamples,
      ...(examples !== undefined ? { taskSamples: examples } : {}),
      ...(topN !== undefined ? { topN } : {})
    }
  }
  return { scorer, checkpoint, room, data, options }
})

const fractionRange = { min: 0, minExclusive: true, max: 1 } as const

const unitLabel: Record<Unit, string> = { neurons: "MLP neurons", heads: "key/value groups", layers: "decoder blocks" }

/** "512" or "512, 384, ..." when layers differ. */
export const widthsText = (config: ModelConfig, unit: Unit): string => {
  if (unit === "layers") return String(config.layers.length)
  const widths = config.layers.map((l) => (unit === "neurons" ? l.intermediateSize : l.numKeyValueHeads))
  return widths.every((w) => w === widths[0]) ? `${widths[0]} per layer` : widths.join(", ")
}

const headsText = (config: ModelConfig) => {
  const l = config.layers[0]
  return `${l.numHeads} query / ${l.numKeyValueHeads} key-value heads of size ${config.headDim}`
}

const number = (n: number) => n.toLocaleString("en-US")

/** A description of the data a score was computed on. */
export const dataText = (scores: Scores, calibration: string): string =>
  scores.scorer === "random" ? "no data" : `${number(scores.samples)} calibration sequences of ${calibration}` +
    (scores.scorer === "contrastive" ? " and general text" : "") + `, ${number(scores.tokens)} tokens`

export const pruneCommand = Command.make(
  "prune",
  {
    checkpoint: checkpointArgument,
    out: Flag.String("out").pipe(Flag.withDescription("Folder to write the pruned checkpoint to.")),
    keepParams: Flag.Finite("keep-params").pipe(
      Flag.withDescription(
        "Share of the non-embedding parameters to keep (as a plan's target.parameters): the most units whose removal " +
          "leaves at most this share. Give this or --keep-units."
      ),
      withRange(fractionRange, "number"),
      Flag.optional
    ),
    keepUnits: Flag.Finite("keep-units").pipe(
      Flag.withDescription(
        "Fraction of the units to keep: of each layer's MLP neurons or key/value groups (rounded to a legal count, at " +
          "least one; with --allocation global, of all layers' together) or of the decoder blocks. Give this or --keep-params."
      ),
      withRange(fractionRange, "number"),
      Flag.optional
    ),
    ...scoringFlags,
    allocation: Flag.Literals("allocation", ["uniform", "global"]).pipe(
      Flag.withDescription(
        "neurons and heads: keep the fraction in every layer (uniform, a standard Hugging Face config) or rank all " +
          "layers together so layers end up with different widths (global; the config then records per-layer shapes " +
          "in layer_shapes, which only simmer loads: see the README, 'Layers of different widths')."
      ),
      withShownDefault("uniform")
    ),
    replace: Flag.Boolean("replace").pipe(Flag.withDescription("Replace --out if it exists."), Flag.withDefault(false))
  },
  Effect.fnUntraced(function*(input) {
    // Cheap checks first: a scoring pass can take minutes on a large model.
    const target = yield* pruneTarget(input.keepParams, input.keepUnits)
    if (!input.replace && existsSync(input.out)) {
      return yield* new TargetExists({
        path: input.out,
        message: `${input.out} already exists; refusing to overwrite it (choose another --out, or add --replace).`
      })
    }
    const { checkpoint, room, data, options, scorer } = yield* prepareScoring(input)
    const started = performance.now()
    let saving: Progress | undefined
    const result = yield* pruneCheckpoint(
      checkpoint,
      room,
      input.out,
      { unit: input.unit, scorer, target, allocation: input.allocation },
      data,
      {
        score: options,
        onTensor: (_, done, total) => {
          saving ??= makeProgress(`saving ${input.out}, tensors`, total)
          saving.update(done + 1)
        },
        onExisting: input.replace ? "replace" : "fail"
      }
    )
    saving?.finish()
    const seconds = (performance.now() - started) / 1000
    const { before, after } = result
    if (input.json) {
      yield* Console.log(JSON.stringify(
        {
          checkpoint: input.checkpoint,
          out: input.out,
          unit: input.unit,
          scorer,
          target: target.kind === "parameters" ? { keepParams: target.keep } : { keepUnits: target.keep },
          nonEmbeddingShare: after.nonEmbedding / before.nonEmbedding,
          allocation: input.allocation,
          calibration: { task: input.calibration, samples: result.scores.samples, tokens: result.scores.tokens },
          seconds,
          scoreSeconds: result.scoreSeconds,
          saveSeconds: result.saveSeconds,
          before: { ...before, layers: checkpoint.config.layers },
          after: { ...after, layers: result.config.layers },
          kept: result.plan.keep
        },
        null,
        2
      ))
      return
    }
    yield* Console.log(
      `pruned ${unitLabel[input.unit]} of ${input.checkpoint} with the ${scorer} scorer ` +
        `(${dataText(result.scores, input.calibration)}) in ${seconds.toFixed(2)} s`
    )
    yield* Console.log(
      `${unitLabel[input.unit]}: ${widthsText(checkpoint.config, input.unit)} → ${widthsText(result.config, input.unit)}` +
        (input.unit === "heads" ? ` (${headsText(result.config)}, hidden size ${result.config.hiddenSize})` : "")
    )
    yield* Console.log(countsText(before, after))
    yield* Console.log(shareText(before, after, target))
    yield* Console.log(`saved ${input.out}`)
    if (!isUniform(result.config)) {
      yield* Console.log(
        "note: its layers differ in width, recorded in config.json's layer_shapes; simmer loads it, transformers and " +
          "other runtimes do not (see the README, 'Layers of different widths')"
      )
    }
  }, Effect.scoped)
).pipe(
  Command.withDescription(
    "One-shot structured pruning: score MLP neurons, key/value groups or decoder blocks on calibration data, keep the " +
      "best fraction (uniform per layer unless --allocation global) and save a checkpoint that loads like the original."
  ),
  Command.withExamples([
    { command: "simmer prune models/base --out pruned --keep-params 0.75", description: "Keep 3/4 of the non-embedding parameters by removing MLP neurons" },
    { command: "simmer prune models/base --out pruned --keep-units 0.75", description: "Keep 3/4 of the MLP neurons of every layer" },
    {
      command: "simmer prune models/base --out pruned --unit heads --keep-units 0.5 --calibration program",
      description: "Keep half the key/value groups, scored on the program task"
    },
    {
      command: "simmer prune models/base --out pruned --keep-params 0.5 --allocation global",
      description: "Keep half the non-embedding parameters, MLP neurons ranked across all layers (layers of different widths)"
    },
    {
      command: "simmer prune ./ckpt --out ./small --unit layers --keep-units 0.75 --scorer skip-loss --calibration gsm8k.jsonl",
      description: "Drop the quarter of the blocks whose removal costs least loss"
    }
  ])
)

/** The size `--keep-params` or `--keep-units` asks for; exactly one of them. */
const pruneTarget = (keepParams: Option.Option<number>, keepUnits: Option.Option<number>): Effect.Effect<PruneTarget, InvalidArguments> =>
  Option.isSome(keepParams) === Option.isSome(keepUnits)
    ? Effect.fail(new InvalidArguments({
      message: "Give exactly one of --keep-params (a share of the non-embedding parameters, e.g. 0.5) or " +
        "--keep-units (a fraction of the neurons, key/value groups or blocks, e.g. 0.5)."
    }))
    : Effect.succeed(
      Option.isSome(keepParams) ? { kind: "parameters", keep: keepParams.value } : { kind: "fraction", keep: Option.getOrThrow(keepUnits) }
    )

const percent = (x: number) => `${(x * 100).toFixed(1)}%`

/** The share of the non-embedding parameters reached, next to what was asked, always printed: units and parameters differ. */
export const shareText = (before: ParamCounts, after: ParamCounts, target: PruneTarget): string =>
  `kept ${percent(after.nonEmbedding / before.nonEmbedding)} of the non-embedding parameters (asked: ` +
  (target.kind === "parameters" ? `at most ${percent(target.keep)} of them` : `${percent(target.keep)} of the units`) + ")"

export const countsText = (before: ParamCounts, after: ParamCounts): string =>
  `parameters: ${number(before.total)} → ${number(after.total)} (${((after.total / before.total) * 100).toFixed(1)}%), ` +
  `non-embedding ${number(before.nonEmbedding)} → ${number(after.nonEmbedding)} ` +
  `(${((after.nonEmbedding / before.nonEmbedding) * 100).toFixed(1)}%)`
