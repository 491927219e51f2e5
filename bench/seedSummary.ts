/**
 * Results of one comparison repeated over seeds, summarised per strategy: each skill's
 * accuracy (mean, and spread as the lowest and highest seed), the share of the base model's
 * accuracy it retains (per seed against that seed's base, then averaged), and the means over
 * all skills and over the skills recovery never trained on. Used by the skills suite of the
 * quality benchmark (`qualitySkills.ts`).
 */

/** One strategy's result in one seed: its size as a share of the base's non-embedding parameters and its accuracy per skill. */
export interface StrategyResult {
  readonly share: number
  readonly accuracy: Readonly<Record<string, number>>
}

/** One seed's results by strategy; `original` is the base model every other strategy is measured against. */
export interface SeedResult {
  readonly seed: number
  readonly strategies: Readonly<Record<string, StrategyResult>>
}

export interface Spread {
  readonly mean: number
  readonly min: number
  readonly max: number
  readonly perSeed: ReadonlyArray<number>
}

export interface StrategySummary {
  readonly strategy: string
  /** Seeds this strategy has a result in. */
  readonly seeds: ReadonlyArray<number>
  readonly share: Spread
  readonly accuracy: Readonly<Record<string, Spread>>
  readonly retained: Readonly<Record<string, Spread>>
  /** Mean accuracy over all skills, per seed. */
  readonly meanAccuracy: Spread
  /** Mean accuracy over the skills recovery did not train on, per seed. */
  readonly meanUntrained: Spread
  /** The lowest share of the base's accuracy kept on any skill in any seed (the target asks ≥ 0.95). */
  readonly lowestRetained: number
}

const round = (x: number) => Math.round(x * 10_000) / 10_000

export const spread = (values: ReadonlyArray<number>): Spread => ({
  mean: round(values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)),
  min: round(Math.min(...values)),
  max: round(Math.max(...values)),
  perSeed: values.map(round)
})

const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)

/**
 * One summary per strategy, in the order strategies first appear. A strategy missing in a seed
 * is summarised over the seeds it has. A skill the base scores 0 on retains 1 when the strategy
 * scores 0 too, else its accuracy over a floor of one thousandth.
 */
export const summariseSeeds = (
  results: ReadonlyArray<SeedResult>,
  skills: ReadonlyArray<string>,
  trained: ReadonlyArray<string>
): Array<StrategySummary> => {
  const strategies = [...new Set(results.flatMap((r) => Object.keys(r.strategies)))]
  const untrained = skills.filter((s) => !trained.includes(s))
  return strategies.map((strategy) => {
    const runs = results.filter((r) => r.strategies[strategy] !== undefined)
    const acc = (r: SeedResult, skill: string) => r.strategies[strategy]!.accuracy[skill] ?? 0
    const retainedIn = (r: SeedResult, skill: string) => {
      const base = r.strategies.original?.accuracy[skill] ?? 0
      return base === 0 && acc(r, skill) === 0 ? 1 : acc(r, skill) / Math.max(base, 1e-3)
    }
    const perSkill = (f: (r: SeedResult, skill: string) => number) =>
      Object.fromEntries(skills.map((skill) => [skill, spread(runs.map((r) => f(r, skill)))]))
    return {
      strategy,
      seeds: runs.map((r) => r.seed),
      share: spread(runs.map((r) => r.strategies[strategy]!.share)),
      accuracy: perSkill(acc),
      retained: perSkill(retainedIn),
      meanAccuracy: spread(runs.map((r) => mean(skills.map((s) => acc(r, s))))),
      meanUntrained: spread(runs.map((r) => mean(untrained.map((s) => acc(r, s))))),
      lowestRetained: round(Math.min(...runs.flatMap((r) => skills.map((s) => retainedIn(r, s)))))
    }
  })
}

const pct = (x: number) => `${(x * 100).toFixed(1)}`

/** "mean [min–max]" in percent. */
export const spreadText = (s: Spread): string => s.perSeed.length > 1 ? `${pct(s.mean)} [${pct(s.min)}–${pct(s.max)}]` : pct(s.mean)

/**
 * A plain-text table: one row per strategy, its share of the base's parameters, accuracy per
 * skill, the mean over all skills and over the untrained ones (percent, mean [lowest–highest
 * seed]), and below it the retained share per skill.
 */
export const formatSeedSummary = (summaries: ReadonlyArray<StrategySummary>, skills: ReadonlyArray<string>): string => {
  const table = (title: string, cell: (s: StrategySummary, skill: string) => string, extra: boolean) => {
    const header = [title, "params", ...skills, ...(extra ? ["mean", "untrained"] : [])]
    const body = summaries.map((s) => [
      s.strategy,
      `${pct(s.share.mean)}%`,
      ...skills.map((skill) => cell(s, skill)),
      ...(extra ? [spreadText(s.meanAccuracy), spreadText(s.meanUntrained)] : [])
    ])
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)))
    return [header, ...body].map((row) => row.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n")
  }
  return [
    table("accuracy %", (s, skill) => spreadText(s.accuracy[skill]), true),
    "",
    table("retained % of base", (s, skill) => spreadText(s.retained[skill]), false)
  ].join("\n")
}
