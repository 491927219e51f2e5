/**
 * `simmer generate <checkpoint>`: continue a prompt with a checkpoint, greedy by default.
 * With --json it prints the prompt ids, generated ids and text, and with --logits the float32
 * logits of every prompt position, so the numerics can be compared with another implementation.
 */
import * as tf from "@tensorflow/tfjs"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { loadTokenizer, type Tokenizer } from "../io/Tokenizer.ts"
import { generate } from "../model/Generate.ts"
import { forward } from "../model/Transformer.ts"
import { Compute } from "../services/Compute.ts"
import { backendFlag, jsonFlag } from "./Flags.ts"
import { deviceCapacity } from "../compute/DeviceCapacity.ts"
import { openCheckpoint } from "../io/Checkpoint.ts"
import { generateBlockwise } from "../model/BlockwiseGenerate.ts"
import { countParams, disposeParams } from "../model/Params.ts"
import { checkpointSource } from "../model/WeightSource.ts"
import { loadModelChecked, residentBytes } from "./LoadModel.ts"
import { makeProgress } from "./Progress.ts"
import { InvalidArguments } from "./Output.ts"

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

export const generateCommand = Command.make(
  "generate",
  {
    checkpoint: Argument.String("checkpoint").pipe(
      Argument.withDescription("A Hugging Face checkpoint folder (config.json + model.safetensors).")
    ),
    prompt: Flag.String("prompt").pipe(
      Flag.withDescription("Prompt text, encoded with the checkpoint's tokenizer.json (special tokens added as the tokenizer defines)."),
      Flag.optional
    ),
    ids: Flag.String("ids").pipe(
      Flag.withDescription("Prompt as comma-separated token ids, e.g. 5,17,3 (for checkpoints without a tokenizer)."),
      Flag.optional
    ),
    maxNewTokens: Flag.Int("max-new-tokens").pipe(
      Flag.withDescription("How many tokens to generate at most."),
      Flag.withDefault(32)
    ),
    temperature: Flag.Finite("temperature").pipe(
      Flag.withDescription("Sampling temperature; 0 (default) is greedy decoding."),
      Flag.withDefault(0)
    ),
    topP: Flag.Finite("top-p").pipe(
      Flag.withDescription("Nucleus sampling: sample from the smallest set of tokens holding this probability."),
      Flag.withDefault(1)
    ),
    seed: Flag.Int("seed").pipe(Flag.withDescription("Seed for sampling."), Flag.withDefault(0)),
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
    if (input.maxNewTokens < 0) {
      return yield* new InvalidArguments({ message: `--max-new-tokens must be 0 or more, got ${input.maxNewTokens}.` })
    }
    if (input.temperature < 0 || input.topP <= 0 || input.topP > 1) {
      return yield* new InvalidArguments({
        message: `--temperature must be ≥ 0 and --top-p in (0, 1], got ${input.temperature} and ${input.topP}.`
      })
    }
    if (Option.isSome(input.prompt) === Option.isSome(input.ids)) {
      return yield* new InvalidArguments({ message: "Give exactly one of --prompt \"text\" or --ids 5,17,3." })
    }
    // The whole model on the device when it fits; otherwise block by block from the shards.
    const open = yield* openCheckpoint(input.checkpoint)
    const fits = residentBytes(countParams(open.config).total) + tf.memory().numBytes <= deviceCapacity().bytes
    if (!fits && input.logits) {
      return yield* new InvalidArguments({
        message: `--logits needs the whole model on the device, and ${input.checkpoint} does not fit the ` +
          `${deviceCapacity().kind}; use the tensorflow backend (--backend tensorflow).`
      })
    }
    const checkpoint = fits ? yield* loadModelChecked(input.checkpoint, "generate") : undefined
    if (checkpoint !== undefined) yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(checkpoint.config, checkpoint.params)))
    const config = open.config
    const tokenizer: Tokenizer | undefined = Option.isSome(input.prompt)
      ? yield* loadTokenizer(input.checkpoint)
      : yield* loadTokenizer(input.checkpoint).pipe(Effect.orElseSucceed(() => undefined))
    const promptIds = Option.isSome(input.ids)
      ? yield* parseIds(input.ids.value, config.vocabSize)
      : tokenizer!.encode(Option.getOrThrow(input.prompt), { addSpecialTokens: true })
    if (promptIds.length === 0) return yield* new InvalidArguments({ message: "The prompt encodes to no tokens." })
    const outOfRange = promptIds.find((id) => id >= config.vocabSize)
    if (outOfRange !== undefined) {
      return yield* new InvalidArguments({
        message: `The tokenizer produced id ${outOfRange}, outside the model's vocabulary of ${config.vocabSize}.`
      })
    }
    const stopTokens = input.ignoreEos ? [] : eosIds(open.generationConfig, open.hfConfig)
    const sampling = { temperature: input.temperature, topP: input.topP, seed: input.seed, maxNewTokens: input.maxNewTokens, stopTokens }
    let generated: Array<number>
    if (checkpoint !== undefined) {
      generated = generate(checkpoint.config, checkpoint.params, [promptIds], sampling)[0]
    } else {
      yield* Effect.logInfo(
        `${input.checkpoint} does not fit the ${deviceCapacity().kind} as a whole: decoding block by block ` +
          "(every weight is read from the shards once per token)"
      )
      const progress = makeProgress("generate (block by block), tokens", input.maxNewTokens)
      generated = yield* generateBlockwise(checkpointSource(open), promptIds, { ...sampling, onToken: (done) => progress.update(done) })
      progress.finish()
    }
    const text = tokenizer?.decode(generated, { skipSpecialTokens: true })
    if (!input.json) {
      yield* Console.log(text ?? generated.join(","))
      return
    }
    const logits = input.logits
      ? tf.tidy(() => forward(config, checkpoint!.params, tf.tensor2d([promptIds], undefined, "int32")).logits.arraySync()[0])
      : undefined
    yield* Console.log(JSON.stringify({
      prompt_ids: promptIds,
      generated_ids: generated,
      ...(text !== undefined ? { text } : {}),
      ...(logits !== undefined ? { logits } : {})
    }))
  }, Effect.scoped)
).pipe(
  Command.withDescription("Continue a prompt with a checkpoint (greedy by default) and print the new tokens."),
  Command.withExamples([
    { command: "simmer generate models/base --prompt \"12+7=\"", description: "Greedy continuation of a text prompt" },
    { command: "simmer generate ./ckpt --ids 1,45,3 --max-new-tokens 12 --json --logits", description: "Token ids in, ids and logits out" }
  ])
)
