/**
 * How an example becomes tokens, the same for training and for evaluation:
 * `<bos> prompt completion <eos>`, the completion being what the model must produce.
 */
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { Example } from "./Task.ts"

/** A training sequence: its token ids and how many of them are the prompt. */
export interface TokenizedExample {
  readonly ids: ReadonlyArray<number>
  readonly promptLength: number
}

/** Prompt ids a model continues at evaluation time: `<bos>` (when the tokenizer has one) then the prompt. */
export const encodePrompt = (tokenizer: Tokenizer, prompt: string): Array<number> => [
  ...(tokenizer.bosId !== undefined ? [tokenizer.bosId] : []),
  ...tokenizer.encode(prompt)
]

/** The training sequence of an example; targets before `promptLength` are the prompt's. */
export const encodeExample = (tokenizer: Tokenizer, example: Example): TokenizedExample => {
  const prompt = encodePrompt(tokenizer, example.prompt)
  return {
    ids: [...prompt, ...tokenizer.encode(example.completion), ...(tokenizer.eosId !== undefined ? [tokenizer.eosId] : [])],
    promptLength: prompt.length
  }
}
