/**
 * How the CLI talks to people and scripts: results on stdout (text, or JSON with --json),
 * logs and progress on stderr, and a failure as one paragraph naming the file and the problem
 * with a non-zero exit code, never a stack trace for a problem the user can fix.
 */
import { Cause, Console, Effect, Logger, Schema } from "effect"
import { CliError } from "effect/cli"

/** Arguments that parse but do not make sense together (any command). */
export class InvalidArguments extends Schema.TaggedError<InvalidArguments>()("InvalidArguments", {
  message: Schema.String
}) {}

/** Exit codes simmer documents (README "Exit codes"). */
export const ExitCode = {
  ok: 0,
  /** Bad input: a missing or malformed checkpoint, plan, dataset or flag. */
  failure: 1,
  /** A run finished without reaching its target: every further pruning step failed the gates. */
  targetNotReached: 3,
  /** Internal error: a bug in simmer (please report it with the message). */
  defect: 70,
  /** Stopped by SIGTERM/SIGINT with its state saved: `simmer resume <run>` continues (EX_TEMPFAIL). */
  preempted: 75,
  /** Interrupted outside a run (nothing to resume). */
  interrupted: 130
} as const

/** Logs go to stderr as plain lines, so stdout carries only results. */
export const stderrLogger = Logger.layer([
  Logger.make(({ logLevel, message }) => {
    const text = (Array.isArray(message) ? message : [message]).map((m) => typeof m === "string" ? m : JSON.stringify(m)).join(" ")
    process.stderr.write(`[${logLevel.toLowerCase()}] ${text}\n`)
  })
])

const isUserError = (error: unknown): error is { readonly _tag: string; readonly message: string } =>
  typeof error === "object" && error !== null && "_tag" in error && "message" in error &&
  typeof (error as { message: unknown }).message === "string"

/**
 * Renders a failed command: typed errors as their message, defects with their stack (they are
 * bugs). CLI parse errors were already shown by the CLI library together with the help.
 */
export const reportFailure = <A, E, R>(program: Effect.Effect<A, E, R>): Effect.Effect<void, never, R> =>
  program.pipe(
    Effect.asVoid,
    Effect.catchCause((cause) =>
      Effect.gen(function*() {
        if (Cause.hasInterruptsOnly(cause)) {
          process.exitCode = ExitCode.interrupted
          return
        }
        const error = Cause.squash(cause)
        if (isUserError(error)) {
          // The CLI library already printed parse errors together with the help.
          if (!CliError.isCliError(error)) yield* Console.error(`simmer: ${error.message}`)
          process.exitCode = ExitCode.failure
          return
        }
        yield* Console.error(`simmer: internal error (please report it):\n${Cause.pretty(cause)}`)
        process.exitCode = ExitCode.defect
      })
    )
  )
