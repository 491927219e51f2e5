/**
 * The fixed character set of the built-in tasks. Every prompt, completion and answer that
 * `arith`, `program` and `general` produce uses only these characters, so a character-level
 * tokenizer built from `ALPHABET` covers all of them (and nothing else is ever needed).
 */

/** Every character any built-in task can emit, sorted by code point (54 characters). */
export const ALPHABET = "\n #%()*+,-./0123456789<=>?[]abcdefghijklmnopqrstuvwxyz"

const allowed = new Set(ALPHABET)

/** The distinct characters of `text` that are not in `ALPHABET` (empty when it is covered). */
export const outsideAlphabet = (text: string): Array<string> => {
  const out = new Set<string>()
  for (const ch of text) if (!allowed.has(ch)) out.add(ch)
  return [...out]
}
