/**
 * `simmer reward <checkpoint>`: scores text or token ids with a learned reward model (a
 * `XxxForSequenceClassification` checkpoint with num_labels 1), as transformers would: text is
 * `tokenizer(prompt + completion)`, the score is the head's output at the last token before the
 * first pad. Characters the tokenizer does not know are named, as `simmer generate` names them.
 * With --json it prints one document whose `score` is the (first) sequence's score.
 */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { loadTokenizer, unknownCharactersWarning } from "../io/Tokenizer.ts"
import { scoreIds } from "../reward/ClassifierReward.ts"
import { disposeRewardCheckpoint, loadRewardCheckpoint } from "../reward/RewardCheckpoint.ts"
import { Compute } from "../services/Compute.ts"
import { backendFlag, jsonFlag, repeatable } from "./Flags.ts"
import { parseIds } from "./GenerateCommand.ts"
import { InvalidArguments } from "./Output.ts"
import { localCheckpoint } from "./CheckpointArgument.ts"

export const rewardCommand = Command.make(
  "reward",
  {
    checkpoint: Argument.String("checkpoint").pipe(
      Argument.withDescription("A reward model: a LlamaForSequenceClassification / Qwen2ForSequenceClassification folder (num_labels 1), or its Hub id.")
    ),
    prompt: Flag.String("prompt").pipe(
      Flag.withDescription("Prompt text; each --completion is scored after it (encoded with the checkpoint's tokenizer.json)."),
      Flag.optional
    ),
    completions: Flag.String("completion").pipe(
      Flag.withDescription("A completion of the prompt to score; repeat to score several."),
      repeatable
    ),
    ids: Flag.String("ids").pipe(
      Flag.withDescription("A sequence as comma-separated token ids, e.g. 1,45,3; repeat to score several in one batch."),
      repeatable
    ),
    batchSize: Flag.Int("batch-size").pipe(Flag.withDescription("Sequences per forward pass."), Flag.withDefault(16)),
    json: jsonFlag,
    backend: backendFlag
  },
  Effect.fnUntraced(function*(input) {
    yield* Compute // the backend is initialised before any tensor exists
    const text = Option.isSome(input.prompt) || input.completions.length > 0
    if (text === (input.ids.length > 0)) {
      return yield* new InvalidArguments({
        message: "Give text (--prompt \"...\" and/or --completion \"...\") or token ids (--ids 1,45,3), not both or neither."
      })
    }
    if (input.batchSize < 1) return yield* new InvalidArguments({ message: `--batch-size must be 1 or more, got ${input.batchSize}.` })
    const dir = yield* localCheckpoint(input.checkpoint)
    const model = yield* Effect.acquireRelease(
      loadRewardCheckpoint(dir),
      (loaded) => Effect.sync(() => disposeRewardCheckpoint(loaded))
    )
    const prompt = Option.getOrElse(input.prompt, () => "")
    const completions = input.completions.length > 0 ? input.completions : [""]
    const tokenizer = text ? yield* loadTokenizer(dir) : undefined
    if (tokenizer !== undefined) {
      const warning = unknownCharactersWarning(tokenizer, input.checkpoint, prompt + completions.join(""))
      if (warning !== undefined) yield* Effect.logWarning(warning)
    }
    const sequences = tokenizer !== undefined
      ? completions.map((completion) => tokenizer.encode(prompt + completion, { addSpecialTokens: true }))
      : yield* Effect.forEach(input.ids, (ids) => parseIds(ids, model.config.vocabSize))
    const scores = yield* scoreIds(model, sequences, input.batchSize)
    const results = sequences.map((ids, i) => ({
      ...(text ? { prompt, completion: completions[i] } : {}),
      ids,
      score: scores[i]
    }))
    if (input.json) {
      yield* Console.log(JSON.stringify({ checkpoint: input.checkpoint, score: scores[0], results }))
      return
    }
    yield* Console.log(results.map((r) => `${r.score}\t${"completion" in r ? JSON.stringify(r.completion) : r.ids.join(",")}`).join("\n"))
  }, Effect.scoped)
).pipe(
  Command.withDescription("Score text or token ids with a reward model (a ForSequenceClassification checkpoint with num_labels 1)."),
  Command.withExamples([
    { command: "simmer reward ./rm --prompt \"2+3=\" --completion 5 --completion 6", description: "Score two completions of a prompt" },
    { command: "simmer reward ./rm --ids 1,45,3 --json", description: "Score a token sequence; JSON with a numeric score" }
  ])
)
