/**
 * Tokenizers: the interface the rest of simmer uses, the Hugging Face tokenizer of a
 * checkpoint folder (tokenizer.json + tokenizer_config.json through @huggingface/tokenizers,
 * a pure-JS implementation of the `tokenizers` file format), and `loadTokenizer`.
 *
 * `encode` returns the ids of the text alone unless asked to add special tokens, because
 * prompts and completions are concatenated by the tasks, which decide where BOS / EOS go;
 * `addSpecialTokens: true` gives what transformers' `tokenizer(text)` gives (the
 * post-processor's template, e.g. Llama's leading BOS). `decode` keeps special tokens unless
 * asked to skip them, as transformers' `decode` does.
 */
import { readFile, stat } from "node:fs/promises"
import { join } from "node:path"
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers"
import { Effect } from "effect"
import { describeCause, errnoCode, FileSystemError, InvalidTokenizer, NoTokenizer } from "./Errors.ts"

export interface EncodeOptions {
  /** Apply the tokenizer's post-processor template (e.g. a leading BOS). Default false. */
  readonly addSpecialTokens?: boolean
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, padding, ...) from the text. Default false. */
  readonly skipSpecialTokens?: boolean
}

export interface Tokenizer {
  /** Size of the id space: the largest id + 1, added tokens included. */
  readonly vocabSize: number
  readonly bosId: number | undefined
  readonly eosId: number | undefined
  readonly padId: number | undefined
  /** The id text outside the vocabulary becomes, when the tokenizer has one (byte-level BPE has none). */
  readonly unkId: number | undefined
  readonly encode: (text: string, options?: EncodeOptions) => Array<number>
  readonly decode: (ids: ReadonlyArray<number>, options?: DecodeOptions) => string
}

/**
 * The characters of `text` the tokenizer cannot represent (each encodes to its unknown token),
 * in order of first appearance, so a command can name them instead of silently feeding the
 * model `<unk>`s.
 */
export const unknownCharacters = (tokenizer: Tokenizer, text: string): Array<string> => {
  const unk = tokenizer.unkId
  if (unk === undefined) return []
  return [...new Set(Array.from(text))].filter((c) => tokenizer.encode(c).includes(unk))
}

/** A warning naming the characters of `text` that the tokenizer of `checkpoint` does not know, or undefined when it knows all. */
export const unknownCharactersWarning = (tokenizer: Tokenizer, checkpoint: string, text: string): string | undefined => {
  const unknown = unknownCharacters(tokenizer, text)
  return unknown.length === 0
    ? undefined
    : `the tokenizer of ${checkpoint} does not know ${unknown.map((c) => JSON.stringify(c)).join(", ")}: ` +
      `the model sees the unknown token for ${unknown.length === 1 ? "it" : "them"}.`
}

/** tokenizer_config.json names special tokens as strings or as AddedToken objects. */
const tokenContent = (value: unknown): string | undefined => {
  if (typeof value === "string") return value
  if (typeof value === "object" && value !== null && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content
  }
  return undefined
}

/**
 * A tokenizer built from parsed tokenizer.json and tokenizer_config.json content. Throws
 * when the library cannot build it; `loadTokenizer` turns that into InvalidTokenizer.
 */
export const makeHfTokenizer = (tokenizerJson: unknown, tokenizerConfig: Record<string, unknown>): Tokenizer => {
  const impl = new HfTokenizerImpl(tokenizerJson as object, tokenizerConfig)
  const idOf = (key: string) => {
    const content = tokenContent(tokenizerConfig[key])
    return content === undefined ? undefined : impl.token_to_id(content)
  }
  const model = (tokenizerJson as { model?: { unk_token?: unknown } } | null)?.model
  const unkToken = tokenContent(tokenizerConfig.unk_token) ?? tokenContent(model?.unk_token)
  let maxId = -1
  for (const id of impl.get_vocab(true).values()) if (id > maxId) maxId = id
  return {
    vocabSize: maxId + 1,
    bosId: idOf("bos_token"),
    eosId: idOf("eos_token"),
    padId: idOf("pad_token"),
    unkId: unkToken === undefined ? undefined : impl.token_to_id(unkToken),
    encode: (text, options = {}) => impl.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids,
    // The library refuses an empty list; the text of no tokens is "".
    decode: (ids, options = {}) =>
      ids.length === 0 ? "" : impl.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false })
  }
}

const readOptional = (path: string) =>
  Effect.tryPromise({
    try: async () => {
      try {
        return await readFile(path, "utf8")
      } catch (cause) {
        if (errnoCode(cause) === "ENOENT") return undefined
        throw cause
      }
    },
    catch: (cause) => new FileSystemError({ path, message: `Cannot read ${path}: ${describeCause(cause)}.` })
  })

const parseJson = (path: string, text: string) =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (cause) => new InvalidTokenizer({ path, message: `${path} is not valid JSON: ${describeCause(cause)}.` })
  })

const exists = (path: string) =>
  Effect.promise(() => stat(path).then(() => true, () => false))

/**
 * The tokenizer of a checkpoint folder: tokenizer.json (required) and tokenizer_config.json
 * (optional: special token names, clean-up flags). NoTokenizer when the folder has no
 * tokenizer.json, saying what it has instead (SentencePiece / vocab files need converting).
 */
export const loadTokenizer = Effect.fn("Tokenizer.load")(function*(
  dir: string
): Effect.fn.Return<Tokenizer, NoTokenizer | InvalidTokenizer | FileSystemError> {
  const jsonPath = join(dir, "tokenizer.json")
  const configPath = join(dir, "tokenizer_config.json")
  const jsonText = yield* readOptional(jsonPath)
  if (jsonText === undefined) {
    const others = []
    for (const name of ["tokenizer.model", "vocab.json", "merges.txt", "vocab.txt"]) {
      if (yield* exists(join(dir, name))) others.push(name)
    }
    return yield* new NoTokenizer({
      path: jsonPath,
      message: others.length === 0
        ? `${dir} has no tokenizer (no tokenizer.json).`
        : `${dir} has no tokenizer.json, only ${others.join(", ")}; simmer reads the tokenizer.json format ` +
          `(save the tokenizer once with transformers' AutoTokenizer.from_pretrained(...).save_pretrained(...) to create it).`
    })
  }
  const tokenizerJson = yield* parseJson(jsonPath, jsonText)
  const configText = yield* readOptional(configPath)
  const tokenizerConfig = configText === undefined ? {} : yield* parseJson(configPath, configText)
  if (typeof tokenizerConfig !== "object" || tokenizerConfig === null || Array.isArray(tokenizerConfig)) {
    return yield* new InvalidTokenizer({ path: configPath, message: `${configPath} must hold a JSON object.` })
  }
  return yield* Effect.try({
    try: () => makeHfTokenizer(tokenizerJson, tokenizerConfig as Record<string, unknown>),
    catch: (cause) =>
      new InvalidTokenizer({ path: jsonPath, message: `${jsonPath} cannot be loaded as a tokenizer: ${describeCause(cause)}.` })
  })
})
