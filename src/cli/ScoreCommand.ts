/**
 * `simmer score <checkpoint> --unit neurons|heads|layers --scorer ...`: the importance ranking
 * a prune would use, without cutting anything. Text: per layer the score range and the units
 * that would go first; --json: the full score vectors (and a scorer's intermediate vectors).
 */
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { checkpointSource } from "../model/WeightSource.ts"
import { scoreSource } from "../prune/Scorers.ts"
import { rankAscending, type Scores, scoreVectors, summarizeVector } from "../prune/Scores.ts"
import { withRange, withShownDefault } from "./Flags.ts"
import { checkpointArgument, dataText, prepareScoring, scoringFlags } from "./PruneCommand.ts"

const format = (x: number) => (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4) || x === 0 ? x.toFixed(4) : x.toExponential(3)

const summaryLines = (scores: Scores, lowest: number): Array<string> => {
  if (scores.unit === "layers") {
    const order = rankAscending(scores.perBlock)
    return Array.from(scores.perBlock, (score, i) => `block ${i}: ${format(score)} (goes ${ordinal(order.indexOf(i) + 1)})`)
  }
  const name = scores.unit === "neurons" ? "neurons" : "key/value groups"
  return scores.perLayer.map((values, i) => {
    const s = summarizeVector(values, lowest)
    return `layer ${i}: ${s.count} ${name}; min ${format(s.min)}, median ${format(s.median)}, max ${format(s.max)}; ` +
      `first to go: ${s.lowest.map((u) => `#${u.index} ${format(u.score)}`).join(", ")}`
  })
}

const ordinal = (n: number) => `${n}${n % 10 === 1 && n % 100 !== 11 ? "st" : n % 10 === 2 && n % 100 !== 12 ? "nd" : n % 10 === 3 && n % 100 !== 13 ? "rd" : "th"}`

export const scoreCommand = Command.make(
  "score",
  {
    checkpoint: checkpointArgument,
    ...scoringFlags,
    lowest: Flag.Int("lowest").pipe(
      Flag.withDescription("Units listed per layer as the first to go."),
      withRange({ min: 0 }),
      withShownDefault(5)
    )
  },
  Effect.fnUntraced(function*(input) {
    const { checkpoint, room, data, options, scorer } = yield* prepareScoring(input)
    const started = performance.now()
    const scores = yield* scoreSource(checkpointSource(checkpoint, room), input.unit, scorer, data, options)
    const seconds = (performance.now() - started) / 1000
    if (input.json) {
      const vectors = scoreVectors(scores).map((v) => Array.from(v))
      yield* Console.log(JSON.stringify({
        checkpoint: input.checkpoint,
        unit: scores.unit,
        scorer: scores.scorer,
        calibration: input.calibration,
        samples: scores.samples,
        tokens: scores.tokens,
        seconds,
        ...(scores.unit === "layers" ? { scores: vectors[0] } : { scores: vectors }),
        ...(scores.details !== undefined
          ? { details: Object.fromEntries(Object.entries(scores.details).map(([k, v]) => [k, v.map((x) => Array.from(x))])) }
          : {})
      }))
      return
    }
    yield* Console.log(
      `${scores.scorer} scores of ${input.unit === "heads" ? "key/value groups" : input.unit === "layers" ? "decoder blocks" : "MLP neurons"} ` +
        `(${dataText(scores, input.calibration)}; ${seconds.toFixed(2)} s); higher = more important, lowest goes first`
    )
    for (const line of summaryLines(scores, input.lowest)) yield* Console.log(line)
  }, Effect.scoped)
).pipe(
  Command.withDescription("Print the importance ranking of MLP neurons, key/value groups or decoder blocks (--json: every score)."),
  Command.withExamples([
    { command: "simmer score models/base", description: "Mean |activation| of every MLP neuron on arith calibration data" },
    { command: "simmer score models/base --unit layers --scorer skip-loss --json", description: "Loss increase when each block is skipped" }
  ])
)
