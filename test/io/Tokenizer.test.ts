import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeCharTokenizer } from "../../src/io/CharTokenizer.ts"
import { loadTokenizer } from "../../src/io/Tokenizer.ts"
import { tempDir, writeBytes } from "./_support.ts"

const alphabet = "0123456789+-*= \nabc,."

const writeFiles = (dir: string, files: Readonly<Record<string, string>>) =>
  Effect.forEach(Object.entries(files), ([name, text]) => writeBytes(join(dir, name), text), { discard: true })

describe("CharTokenizer", () => {
  const tok = makeCharTokenizer(alphabet)

  it("ids: four special tokens, then the alphabet in order", () => {
    assert.deepStrictEqual([tok.padId, tok.bosId, tok.eosId, tok.unkId, tok.vocabSize], [0, 1, 2, 3, 4 + 21])
    // "1" is alphabet[1] → 5, "+" is alphabet[10] → 14, "=" → 17, " " → 18, "\n" → 19.
    assert.deepStrictEqual(tok.encode("12+3=15\n"), [5, 6, 14, 7, 17, 5, 9, 19])
    assert.deepStrictEqual(tok.encode("a b", { addSpecialTokens: true }), [1, 20, 18, 21])
    assert.deepStrictEqual(tok.encode(""), [])
  })

  it("characters outside the alphabet are <unk>; special token text is the special id", () => {
    assert.deepStrictEqual(tok.encode("1x<eos>"), [5, 3, 2])
    assert.deepStrictEqual(tok.encode("<<bos>😀"), [3, 1, 3])
  })

  it("decodes back, keeping or skipping special tokens", () => {
    const text = "12*3=36\n7-2=5"
    assert.strictEqual(tok.decode(tok.encode(text)), text)
    assert.strictEqual(tok.decode([1, 5, 6, 2, 0]), "<bos>12<eos><pad>")
    assert.strictEqual(tok.decode([1, 5, 6, 2, 0], { skipSpecialTokens: true }), "12")
    assert.strictEqual(tok.decode([999]), "<unk>")
  })

  it("refuses an alphabet with a repeated character", () => {
    assert.throws(() => makeCharTokenizer("abca"), /appears twice/)
  })

  it.effect("its tokenizer.json loads in the Hugging Face tokenizers library with the same ids", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* writeFiles(dir, tok.files())
      const hf = yield* loadTokenizer(dir)
      assert.deepStrictEqual([hf.vocabSize, hf.bosId, hf.eosId, hf.padId], [tok.vocabSize, 1, 2, 0])
      for (const text of ["12+3=15\n", "  a  b  ", "c-1 = 0\n\n", "x?😀", "<bos>1<eos>2<pad>", "", "=<"]) {
        const ids = tok.encode(text)
        assert.deepStrictEqual(hf.encode(text), ids, JSON.stringify(text))
        assert.deepStrictEqual(hf.encode(text, { addSpecialTokens: true }), [1, ...ids], JSON.stringify(text))
        assert.strictEqual(hf.decode(ids), tok.decode(ids), JSON.stringify(text))
        assert.strictEqual(hf.decode(ids, { skipSpecialTokens: true }), tok.decode(ids, { skipSpecialTokens: true }))
      }
      // Spaces before punctuation survive (no clean-up of tokenization spaces).
      assert.strictEqual(hf.decode(tok.encode("a , b . c")), "a , b . c")
    }))
})

describe("HfTokenizer", () => {
  // A small byte-level BPE in the GPT-2 / Llama 3 / Qwen2 style, written by hand.
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 0, content: "<s>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 1, content: "</s>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }
    ],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [0], tokens: ["<s>"] } }
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: { "<s>": 0, "</s>": 1, h: 2, e: 3, l: 4, o: 5, "Ġ": 6, w: 7, r: 8, d: 9, he: 10, ll: 11, hell: 12, hello: 13, "Ġw": 14 },
      merges: ["h e", "l l", "he ll", "hell o", "Ġ w"]
    }
  }
  const tokenizerConfig = {
    bos_token: "<s>",
    eos_token: { content: "</s>", lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
    pad_token: null,
    clean_up_tokenization_spaces: false
  }

  it.effect("encodes with merges, adds BOS on request, maps special tokens from tokenizer_config.json", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* writeFiles(dir, { "tokenizer.json": JSON.stringify(tokenizerJson), "tokenizer_config.json": JSON.stringify(tokenizerConfig) })
      const tok = yield* loadTokenizer(dir)
      // "hello" merges fully; " world" is Ġw o r l d (no merges for the rest).
      assert.deepStrictEqual(tok.encode("hello world"), [13, 14, 5, 8, 4, 9])
      assert.deepStrictEqual(tok.encode("hello world", { addSpecialTokens: true }), [0, 13, 14, 5, 8, 4, 9])
      assert.deepStrictEqual([tok.vocabSize, tok.bosId, tok.eosId, tok.padId], [15, 0, 1, undefined])
      assert.strictEqual(tok.decode([0, 13, 14, 5, 8, 4, 9, 1]), "<s>hello world</s>")
      assert.strictEqual(tok.decode([0, 13, 14, 5, 8, 4, 9, 1], { skipSpecialTokens: true }), "hello world")
      assert.strictEqual(tok.decode([]), "")
    }))

  it.effect("tokenizer_config.json is optional", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* writeFiles(dir, { "tokenizer.json": JSON.stringify(tokenizerJson) })
      const tok = yield* loadTokenizer(dir)
      assert.deepStrictEqual(tok.encode("hello"), [13])
      assert.isUndefined(tok.bosId)
    }))
})

describe("loadTokenizer", () => {
  it.effect("a folder without tokenizer.json gives NoTokenizer saying what is there", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const none = yield* Effect.flip(loadTokenizer(dir))
      assert.strictEqual(none._tag, "NoTokenizer")
      assert.include(none.message, dir)
      yield* writeBytes(join(dir, "tokenizer.model"), "sentencepiece")
      const sp = yield* Effect.flip(loadTokenizer(dir))
      assert.strictEqual(sp._tag, "NoTokenizer")
      assert.include(sp.message, "only tokenizer.model")
      // Callers that can do without a tokenizer catch exactly this case.
      const fallback = yield* loadTokenizer(dir).pipe(Effect.catchTag("NoTokenizer", () => Effect.succeed("none" as const)))
      assert.strictEqual(fallback, "none")
    }))

  it.effect("broken files give InvalidTokenizer naming the file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "tokenizer.json")
      yield* writeBytes(path, "{\"model\": ")
      const json = yield* Effect.flip(loadTokenizer(dir))
      assert.strictEqual(json._tag, "InvalidTokenizer")
      assert.include(json.message, path)
      const mystery = { model: { type: "Mystery" }, added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null }
      yield* writeBytes(path, JSON.stringify(mystery))
      const model = yield* Effect.flip(loadTokenizer(dir))
      assert.strictEqual(model._tag, "InvalidTokenizer")
      assert.include(model.message, "Mystery")
    }))
})
