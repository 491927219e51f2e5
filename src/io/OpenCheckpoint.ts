/**
 * The one way commands open a checkpoint folder with its tokenizer: the folder first (a missing
 * folder or a file given as one gets the same message everywhere, not ENOTDIR in one command
 * and "has no tokenizer" in another), then the tokenizer, which is cheap and so is checked
 * before gigabytes of weights are read, then the weights.
 */
import { Effect } from "effect"
import { type LoadCheckpointError, listCheckpointFolder, loadCheckpoint, type LoadedCheckpoint } from "./Checkpoint.ts"
import type { FileSystemError, InvalidTokenizer, NoTokenizer } from "./Errors.ts"
import { loadTokenizer, type Tokenizer } from "./Tokenizer.ts"

export type OpenCheckpointError = LoadCheckpointError | NoTokenizer | InvalidTokenizer | FileSystemError

/** A checkpoint and its tokenizer (required: a folder without one fails with NoTokenizer). */
export const openCheckpoint = Effect.fn("OpenCheckpoint.open")(function*(
  dir: string
): Effect.fn.Return<{ readonly checkpoint: LoadedCheckpoint; readonly tokenizer: Tokenizer }, OpenCheckpointError> {
  yield* listCheckpointFolder(dir)
  const tokenizer = yield* loadTokenizer(dir)
  const checkpoint = yield* loadCheckpoint(dir)
  return { checkpoint, tokenizer }
})

/** A checkpoint and its tokenizer when it has one (prompts given as token ids need none). */
export const openCheckpointMaybeTokenizer = Effect.fn("OpenCheckpoint.openMaybeTokenizer")(function*(
  dir: string
): Effect.fn.Return<{ readonly checkpoint: LoadedCheckpoint; readonly tokenizer: Tokenizer | undefined }, OpenCheckpointError> {
  yield* listCheckpointFolder(dir)
  const tokenizer = yield* loadTokenizer(dir).pipe(Effect.catchTag("NoTokenizer", () => Effect.succeed(undefined)))
  const checkpoint = yield* loadCheckpoint(dir)
  return { checkpoint, tokenizer }
})
