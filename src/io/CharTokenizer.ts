/**
 * A character tokenizer for simmer's built-in tasks: one id per character of a fixed alphabet
 * plus four special tokens, ids 0-3: `<pad>`, `<bos>`, `<eos>`, `<unk>` (characters outside the
 * alphabet). Small models trained on such tasks need no subword vocabulary.
 *
 * It serialises to tokenizer.json / tokenizer_config.json / special_tokens_map.json that
 * Hugging Face `tokenizers` (and transformers' PreTrainedTokenizerFast, and
 * @huggingface/tokenizers) load with identical ids: a BPE model whose vocabulary is the single
 * characters and which has no merges, with no normalizer and no pre-tokenizer, so every
 * character maps to its own id (or `<unk>`), a Fuse decoder that concatenates tokens without
 * spaces, and a TemplateProcessing post-processor that prepends `<bos>` when special tokens
 * are requested. BPE is used rather than WordLevel because every implementation supports it
 * natively and needs no splitting regex. As in those libraries, the special tokens' text
 * (e.g. "<eos>") inside the input encodes to the special id.
 */
import type { DecodeOptions, EncodeOptions, Tokenizer } from "./Tokenizer.ts"

export const charSpecialTokens = ["<pad>", "<bos>", "<eos>", "<unk>"] as const

export interface CharTokenizer extends Tokenizer {
  /** The characters after the special tokens, in id order (id = 4 + index). */
  readonly alphabet: ReadonlyArray<string>
  readonly bosId: number
  readonly eosId: number
  readonly padId: number
  readonly unkId: number
  /** File name → content of the Hugging Face tokenizer files. */
  readonly files: () => Readonly<Record<string, string>>
}

/**
 * A character tokenizer over `alphabet` (a string; each code point is one character).
 * Throws on a repeated character, since that would make ids ambiguous: alphabets are
 * constants of the task code, so this is a programming error.
 */
export const makeCharTokenizer = (alphabet: string): CharTokenizer => {
  const chars = Array.from(alphabet)
  const vocab = new Map<string, number>()
  charSpecialTokens.forEach((token, id) => vocab.set(token, id))
  for (const c of chars) {
    if (vocab.has(c)) throw new Error(`character ${JSON.stringify(c)} appears twice in the alphabet`)
    vocab.set(c, vocab.size)
  }
  const tokens = [...vocab.keys()]
  const [padId, bosId, eosId, unkId] = [0, 1, 2, 3]

  const encode = (text: string, options: EncodeOptions = {}): Array<number> => {
    const ids: Array<number> = options.addSpecialTokens ? [bosId] : []
    let i = 0
    outer: while (i < text.length) {
      if (text.charCodeAt(i) === 0x3c /* "<" */) {
        for (const [id, token] of charSpecialTokens.entries()) {
          if (text.startsWith(token, i)) {
            ids.push(id)
            i += token.length
            continue outer
          }
        }
      }
      const c = String.fromCodePoint(text.codePointAt(i)!)
      ids.push(vocab.get(c) ?? unkId)
      i += c.length
    }
    return ids
  }

  const decode = (ids: ReadonlyArray<number>, options: DecodeOptions = {}): string => {
    let out = ""
    for (const id of ids) {
      if (options.skipSpecialTokens && id >= 0 && id < charSpecialTokens.length) continue
      // Like the HF libraries, an id outside the vocabulary reads as the unknown token.
      out += tokens[id] ?? charSpecialTokens[unkId]
    }
    return out
  }

  const files = (): Record<string, string> => {
    const addedTokens = charSpecialTokens.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true
    }))
    const tokenizerJson = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: null,
      post_processor: {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "<bos>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
        pair: [
          { SpecialToken: { id: "<bos>", type_id: 0 } },
          { Sequence: { id: "A", type_id: 0 } },
          { SpecialToken: { id: "<bos>", type_id: 1 } },
          { Sequence: { id: "B", type_id: 1 } }
        ],
        special_tokens: { "<bos>": { id: "<bos>", ids: [bosId], tokens: ["<bos>"] } }
      },
      decoder: { type: "Fuse" },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: "<unk>",
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: Object.fromEntries(vocab),
        merges: []
      }
    }
    const tokenizerConfig = {
      added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...rest }) => [String(id), rest])),
      bos_token: "<bos>",
      eos_token: "<eos>",
      pad_token: "<pad>",
      unk_token: "<unk>",
      // Decoding must give back the exact characters, spaces before punctuation included.
      clean_up_tokenization_spaces: false,
      model_max_length: 1_000_000_000_000_000,
      tokenizer_class: "PreTrainedTokenizerFast"
    }
    const specialTokensMap = { bos_token: "<bos>", eos_token: "<eos>", pad_token: "<pad>", unk_token: "<unk>" }
    return {
      "tokenizer.json": JSON.stringify(tokenizerJson, null, 2) + "\n",
      "tokenizer_config.json": JSON.stringify(tokenizerConfig, null, 2) + "\n",
      "special_tokens_map.json": JSON.stringify(specialTokensMap, null, 2) + "\n"
    }
  }

  return { alphabet: chars, vocabSize: tokens.length, bosId, eosId, padId, unkId, encode, decode, files }
}
