/**
 * Progress of long work on stderr: on a terminal, one line redrawn in place (bar, counts,
 * rate, ETA and whatever fields the caller adds); otherwise a plain line at most every
 * `plainEverySeconds`, so logs of unattended runs stay readable.
 */

export interface Progress {
  readonly update: (done: number, fields?: Readonly<Record<string, string>>) => void
  readonly finish: (message?: string) => void
}

const clock = (seconds: number) => {
  if (!Number.isFinite(seconds)) return "--:--"
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const pad = (n: number) => String(n).padStart(2, "0")
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`
}

export const makeProgress = (
  label: string,
  total: number,
  options: {
    readonly stream?: NodeJS.WriteStream
    readonly plainEverySeconds?: number
    /** Work done before this process started (a resumed training): the ETA's rate counts only what follows. */
    readonly from?: number
  } = {}
): Progress => {
  const stream = options.stream ?? process.stderr
  const tty = stream.isTTY === true
  const every = (options.plainEverySeconds ?? 10) * 1000
  const started = performance.now()
  let lastPlain = -Infinity
  let lastDone = 0
  const line = (done: number, fields: Readonly<Record<string, string>>) => {
    const elapsed = (performance.now() - started) / 1000
    const since = done - (options.from ?? 0)
    const eta = since > 0 ? (elapsed / since) * (total - done) : Infinity
    const extra = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join("  ")
    return `${label} ${done}/${total}  ${extra}  elapsed ${clock(elapsed)}  eta ${clock(eta)}`
  }
  return {
    update: (done, fields = {}) => {
      lastDone = done
      if (tty) {
        const width = 24
        const filled = Math.round((done / Math.max(total, 1)) * width)
        stream.write(`\r\x1b[2K[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${line(done, fields)}`)
      } else if (performance.now() - lastPlain >= every || done === total) {
        lastPlain = performance.now()
        stream.write(`${line(done, fields)}\n`)
      }
    },
    finish: (message) => {
      if (tty) stream.write("\r\x1b[2K")
      stream.write(`${message ?? `${label} done: ${lastDone}/${total} in ${clock((performance.now() - started) / 1000)}`}\n`)
    }
  }
}

/**
 * A `(done, total)` callback that shows progress through one or more passes (a scorer may run
 * the blocks twice, e.g. forward then backward, or task then general text): a pass starts when
 * done is 1, and its line finishes when done reaches total.
 */
export const passProgress = (label: string): ((done: number, total: number) => void) => {
  let current: Progress | undefined
  let passes = 0
  return (done, total) => {
    if (current === undefined || done === 1) {
      passes += 1
      current = makeProgress(passes === 1 ? label : `${label} (pass ${passes})`, total)
    }
    current.update(done)
    if (done === total) {
      current.finish()
      current = undefined
    }
  }
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`

/** Files smaller than this download in moments: no bar. */
const quietBelowBytes = 8 * 2 ** 20

/** A download's progress (see hub/HubProgress.ts): bytes as MiB, with the rate. */
export const downloadProgress = (label: string, totalBytes: number) => {
  if (totalBytes < quietBelowBytes) return { update: () => {}, finish: () => {} }
  const started = performance.now()
  const progress = makeProgress(`downloading ${label}`, 100)
  return {
    update: (bytes: number) =>
      progress.update(Math.floor((100 * bytes) / Math.max(totalBytes, 1)), {
        size: `${mib(bytes)} of ${mib(totalBytes)}`,
        rate: `${mib(bytes / Math.max((performance.now() - started) / 1000, 1e-3))}/s`
      }),
    finish: () => progress.finish(`downloaded ${label} (${mib(totalBytes)})`)
  }
}
