/**
 * `simmer generate <checkpoint>`: continue a prompt with a checkpoint, greedy by default.
 * With --json it prints the prompt ids, generated ids and text, and with --logits the float32
 * logits of every prompt position, so the numerics can be compared with another implementation.
 * A model sees at most max_position_embeddings tokens: a longer prompt is refused, and
 * generation stops there with a warning. Prompt characters the tokenizer does not know get a
 * warning naming them, since the model only sees `<unk>` for them.
 */
import * as tf from "@tensorflow/tfjs"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { listCheckpointFolder } from "../io/CheckpointFolder.ts"
import { openLazyCheckpoint } from "../io/CheckpointReader.ts"
import { loadTokenizer, unknownCharactersWarning } from "../io/Tokenizer.ts"
import { generateBlockwise } from "../model/BlockwiseGenerate.ts"
import { checkpointSource } from "../model/WeightSource.ts"
import { loadModelChecked, residentBytes } from "./LoadModel.ts"
import { makeProgress } from "./Progress.ts"
import { generate } from "../model/Generate.ts"
import { countParams, disposeParams } from "../model/Params.ts"
import { readArray } from "../model/Read.ts"
import { forward } from "../model/Transformer.ts"
import { Compute } from "../services/Compute.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { backendFlag, jsonFlag, seedFlag, withRange, withShownDefault } from "./Flags.ts"
import { InvalidArguments } from "./Output.ts"
import { checkpointArgumentDescription, localCheckpoint } from "./CheckpointArgument.ts"

/** "5,17,3" → [5, 17, 3], every id an integer in [0, vocabSize). */
export const parseIds = (text: string, vocabSize: number): Effect.Effect<Array<number>, InvalidArguments> => {
  const parts = text.split(",").map((p) => p.trim())
  const bad = parts.find((p) => !/^\d+$/.test(p) || Number(p) >= vocabSize)
  return bad === undefined && parts.length > 0
    ? Effect.succeed(parts.map(Number))
    : Effect.fail(new InvalidArguments({
      message: `--ids must be comma-separated token ids between 0 and ${vocabSize - 1} (the model's vocabulary), ` +
        `got ${JSON.stringify(bad ?? text)} in "${text}".`
    }))
}

/** EOS ids from generation_config.json, else config.json (a number or a list in both). */
const eosIds = (...sources: ReadonlyArray<unknown>): Array<number> => {
  for (const source of sources) {
    const value = typeof source === "object" && source !== null ? (source as Record<string, unknown>).eos_token_id : undefined
    if (typeof value === "number") return [value]
    if (Array.isArray(value)) return value.filter((v): v is number => typeof v === "number")
  }
  return []
}

/**
 * Prompts in the format the bundled model was trained on (a trailing newline ends the question)
 * and what it answers, greedily; the help shows them and a test checks the answers.
 */
export const bundledModelExamples = [
  { prompt: "bob has 6 shells, multiplies them by 8. how many now?\n", answer: "6*8=48\n#### 48", task: "arith" },
  { prompt: "f(x)=max(x,x%5)\n", answer: "xx5%m", task: "program" }
] as const

/** A prompt as bash's $'...' quoting writes it, so the newline survives the shell. */
const bashQuoted = (text: string) => `$'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n")}'`

/** Why generation ended. */
export type StopReason = "eos" | "max-new-tokens" | "max-positions"

/**
 * How many tokens may be generated after a prompt of `promptLength`: the request, capped so that
 * prompt and generation together stay within the model's positions.
 */
export const generationBudget = (promptLength: number, maxNewTokens: number, maxPositions: number) => {
  const room = maxPositions - promptLength
  return room < maxNewTokens ? { tokens: room, cappedBy: "max-positions" as const } : { tokens: maxNewTokens, cappedBy: "max-new-tokens" as const }
}

export const generateCommand = Command.make(
  "generate",
  {
    checkpoint: Argument.String("checkpoint").pipe(
      Argument.withDescription(checkpointArgumentDescription)
    ),
    prompt: Flag.String("prompt").pipe(
      Flag.withDescription(
        "Prompt text, encoded with the checkpoint's tokenizer.json (special tokens added as the tokenizer defines). " +
          "Give it in the format the model was trained on: the bundled model's prompts end with a newline (see the examples)."
      ),
      Flag.optional
    ),
    ids: Flag.String("ids").pipe(
      Flag.withDescription("Prompt as comma-separated token ids, e.g. 5,17,3 (for checkpoints without a tokenizer)."),
      Flag.optional
    ),
    maxNewTokens: Flag.Int("max-new-tokens").pipe(
      Flag.withDescription(
        "How many tokens to generate at most (fewer when prompt and generation would exceed the model's " +
          "max_position_embeddings; 0 with --json --logits only scores the prompt)."
      ),
      withRange({ min: 0 }),
      withShownDefault(32)
    ),
    temperature: Flag.Finite("temperature").pipe(
      Flag.withDescription("Sampling temperature; 0 is greedy decoding."),
      withRange({ min: 0 }, "number"),
      withShownDefault(0)
    ),
    topP: Flag.Finite("top-p").pipe(
      Flag.withDescription("Nucleus sampling: sample from the smallest set of tokens holding this probability."),
      withRange({ min: 0, minExclusive: true, max: 1 }, "number"),
      withShownDefault(1)
    ),
    seed: seedFlag("Seed for sampling.", 0),
    ignoreEos: Flag.Boolean("ignore-eos").pipe(
      Flag.withDescription("Keep generating after the end-of-sequence token."),
      Flag.withDefault(false)
    ),
    logits: Flag.Boolean("logits").pipe(
      Flag.withDescription("With --json: include the float32 logits of every prompt position."),
      Flag.withDefault(false)
    ),
    json: jsonFlag,
    backend: backendFlag
  },
  Effect.fnUntraced(function*(input) {
    yield* Compute // the backend is initialised before any tensor exists
    if (Option.isSome(input.prompt) === Option.isSome(input.ids)) {
      return yield* new InvalidArguments({ message: "Give exactly one of --prompt \"text\" or --ids 5,17,3." })
    }
    // The folder, then the cheap tokenizer, then the weights: the whole model on the device when
    // it fits, otherwise read block by block from the shards for every token.
    const dir = yield* localCheckpoint(input.checkpoint)
    yield* listCheckpointFolder(dir)
    const tokenizer = yield* loadTokenizer(dir).pipe(Effect.catchTag("NoTokenizer", () => Effect.succeed(undefined)))
    const open = yield* openLazyCheckpoint(dir)
    const { room } = yield* DeviceMemory
    const fits = residentBytes(countParams(open.config).total) + tf.memory().numBytes <= room.budgetBytes
    if (!fits && input.logits) {
      return yield* new InvalidArguments({
        message: `--logits needs the whole model on the device, and ${input.checkpoint} does not fit the ` +
          `${room.kind}; use the tensorflow backend (--backend tensorflow).`
      })
    }
    const checkpoint = open
    if (Option.isSome(input.prompt) && tokenizer === undefined) {
      return yield* new InvalidArguments({
        message: `${input.checkpoint} has no tokenizer.json, so --prompt cannot be encoded; give the prompt as token ids with --ids 5,17,3.`
      })
    }
    const promptIds = Option.isSome(input.ids)
      ? yield* parseIds(input.ids.value, checkpoint.config.vocabSize)
      : tokenizer!.encode(Option.getOrThrow(input.prompt), { addSpecialTokens: true })
    if (promptIds.length === 0) return yield* new InvalidArguments({ message: "The prompt encodes to no tokens." })
    const outOfRange = promptIds.find((id) => id >= checkpoint.config.vocabSize)
    if (outOfRange !== undefined) {
      return yield* new InvalidArguments({
        message: `The tokenizer produced id ${outOfRange}, outside the model's vocabulary of ${checkpoint.config.vocabSize}.`
      })
    }
    const positions = checkpoint.config.maxPositionEmbeddings
    if (promptIds.length >= positions) {
      return yield* new InvalidArguments({
        message: `The prompt is ${promptIds.length} tokens, but ${input.checkpoint} sees at most ${positions} ` +
          `(max_position_embeddings in its config.json), which leaves no room to generate; shorten the prompt.`
      })
    }
    if (Option.isSome(input.prompt)) {
      const warning = unknownCharactersWarning(tokenizer!, input.checkpoint, input.prompt.value)
      if (warning !== undefined) yield* Effect.logWarning(warning)
    }
    // The prompt checked, the weights now (gigabytes on a large model).
    const loaded = fits ? yield* loadModelChecked(dir, "generate", room) : undefined
    if (loaded !== undefined) yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(loaded.config, loaded.params)))
    const budget = generationBudget(promptIds.length, input.maxNewTokens, positions)
    const stopTokens = input.ignoreEos ? [] : eosIds(checkpoint.generationConfig, checkpoint.hfConfig)
    const sampling = { temperature: input.temperature, topP: input.topP, seed: input.seed, maxNewTokens: budget.tokens, stopTokens }
    let generated: Array<number>
    if (loaded !== undefined) {
      generated = (yield* generate(loaded.config, loaded.params, [promptIds], sampling))[0]
    } else {
      yield* Effect.logInfo(
        `${input.checkpoint} does not fit the ${room.kind} as a whole: decoding block by block ` +
          "(every weight is read from the shards once per token)"
      )
      const progress = makeProgress("generate (block by block), tokens", budget.tokens)
      generated = yield* generateBlockwise(checkpointSource(open, room), promptIds, { ...sampling, onToken: (done) => progress.update(done) })
      progress.finish()
    }
    const stopped: StopReason = generated.length > 0 && stopTokens.includes(generated[generated.length - 1]) ? "eos" : budget.cappedBy
    if (stopped === "max-positions") {
      yield* Effect.logWarning(
        `stopped after ${generated.length} new tokens: prompt (${promptIds.length}) and generation reached the ` +
          `${positions} positions ${input.checkpoint} was built for (max_position_embeddings).`
      )
    }
    const text = tokenizer?.decode(generated, { skipSpecialTokens: true })
    if (!input.json) {
      yield* Console.log(text ?? generated.join(","))
      return
    }
    // Computed in a tidy, read after it (a tidy cannot span an await).
    const logits = input.logits
      ? (yield* readArray(tf.tidy(() => forward(loaded!.config, loaded!.params, tf.tensor2d([promptIds], undefined, "int32")).logits), true))[0]
      : undefined
    yield* Console.log(JSON.stringify({
      prompt_ids: promptIds,
      generated_ids: generated,
      stopped,
      ...(text !== undefined ? { text } : {}),
      ...(logits !== undefined ? { logits } : {})
    }))
  }, Effect.scoped)
).pipe(
  Command.withDescription("Continue a prompt with a checkpoint (greedy by default) and print the new tokens."),
  Command.withExamples([
    ...bundledModelExamples.map((e, i) => ({
      command: `simmer generate models/base --prompt ${bashQuoted(e.prompt)}`,
      description: `The bundled model on ${e.task === "arith" ? "an arith question" : "a program task"}; it answers ` +
        `${JSON.stringify(e.answer)}` +
        (i === 0 ? ". Its prompts end with a newline (bash: $'...\\n'); without one the model goes on writing the question" : "")
    })),
    { command: "simmer generate ./ckpt --ids 1,45,3 --max-new-tokens 12 --json --logits", description: "Token ids in, ids and logits out" }
  ])
)
