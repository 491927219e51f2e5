/**
 * openCheckpoint, the one way commands open a checkpoint with its tokenizer (issue 14.15): the
 * folder is checked first, so a file or a missing folder gets loadCheckpoint's message (what
 * `inspect` says), not the tokenizer reader's ENOTDIR or "has no tokenizer".
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { loadCheckpoint } from "../../src/io/Checkpoint.ts"
import { openCheckpoint, openCheckpointMaybeTokenizer } from "../../src/io/OpenCheckpoint.ts"

describe("openCheckpoint", () => {
  it.effect("fails on a file or a missing folder exactly as loadCheckpoint does", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "simmer-open-"))
      try {
        const file = join(dir, "data.jsonl")
        writeFileSync(file, "{}\n")
        for (const path of [file, join(dir, "missing")]) {
          const expected = yield* Effect.flip(loadCheckpoint(path))
          expect(expected._tag).toBe("CheckpointNotFound")
          for (const open of [openCheckpoint, openCheckpointMaybeTokenizer]) {
            const error = yield* Effect.flip(open(path))
            expect([error._tag, error.message]).toEqual([expected._tag, expected.message])
          }
        }
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }))
})
