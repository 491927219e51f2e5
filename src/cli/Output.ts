/**
 * How the CLI talks to people and scripts: results on stdout (text, or JSON with --json),
 * logs and progress on stderr, and a failure as one paragraph naming the file and the problem
 * with a non-zero exit code, never a stack trace for a problem the user can fix.
 */
import { Cause, Console, Effect, Layer, Logger, Option, Schema } from "effect"
import { CliError, CliOutput, type HelpDoc } from "effect/cli"

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
  /** A run failed mid-way (a gate with `onFailure: fail`, a stage's error): its `failed` event and result.json say why. */
  runFailed: 4,
  /** Internal error: a bug in simmer (please report it with the message). */
  defect: 70,
  /** Stopped by SIGTERM/SIGINT with its state saved: `simmer resume <run>` continues (EX_TEMPFAIL). */
  preempted: 75,
  /** Interrupted outside a run (nothing to resume). */
  interrupted: 130
} as const

/** A run stopped on an error after it was logged as `failed` (exit code 4, not 1: the input was fine). */
export class RunFailed extends Schema.TaggedError<RunFailed>()("RunFailed", {
  message: Schema.String
}) {}

/**
 * Logs go to stderr as plain lines, `[level] text`, so stdout carries only results; `prefix`
 * starts each text (a daemon's run process names its run, its lines sharing the daemon's stderr).
 */
export const stderrLoggerWith = (prefix: string) =>
  Logger.layer([
    Logger.make(({ logLevel, message }) => {
      const text = (Array.isArray(message) ? message : [message]).map((m) => typeof m === "string" ? m : JSON.stringify(m)).join(" ")
      process.stderr.write(`[${logLevel.toLowerCase()}] ${prefix}${text}\n`)
    })
  ])

export const stderrLogger = stderrLoggerWith("")

/** One line for a parse error: the CLI library's own texts, with suggestions folded into the line. */
export const usageErrorLine = (error: CliError.CliError): string => {
  switch (error._tag) {
    case "UnrecognizedOption":
      return `unknown flag ${error.option}${suggestionText(error.suggestions)}`
    case "UnknownSubcommand":
      return `unknown command "${error.subcommand}"${suggestionText(error.suggestions)}`
    default:
      return error.message.replace(/\s*\n\s*/g, " ")
  }
}

const suggestionText = (suggestions: ReadonlyArray<string>) =>
  suggestions.length === 0 ? "" : `; did you mean ${suggestions.join(" or ")}?`

/** What a mistyped command prints (on stderr): the problems, one line each, and where the help is. */
export const usageErrorText = (commandPath: ReadonlyArray<string>, errors: ReadonlyArray<CliError.CliError>): string =>
  [...errors.map((e) => `simmer: ${usageErrorLine(e)}`), `see \`${commandPath.join(" ")} --help\``].join("\n")

/**
 * Help marks the flags a command cannot run without; defaults are part of each flag's
 * description (see Flags.withShownDefault), because the CLI library's help does not show them.
 */
export const markRequired = (doc: HelpDoc.HelpDoc): HelpDoc.HelpDoc => ({
  ...doc,
  flags: doc.flags.map((flag) =>
    flag.required
      ? { ...flag, description: Option.some(`${Option.getOrElse(flag.description, () => "")} (required)`.trim()) }
      : flag
  )
})

/**
 * How the CLI library presents help and parse errors: help as it is (required flags marked);
 * a usage error as one line per problem and a pointer to the command's help, on stderr, instead
 * of the whole help page followed by the error.
 */
export const cliOutputLayer: Layer.Layer<never> = Layer.mergeAll(
  CliOutput.layer((() => {
    const base = CliOutput.defaultFormatter()
    return { ...base, formatHelpDoc: (doc) => base.formatHelpDoc(markRequired(doc)) }
  })()),
  CliOutput.layerPresenter({
    present: (event) =>
      event._tag === "InvalidInvocation"
        ? Console.error(usageErrorText(event.commandPath, event.errors))
        : CliOutput.defaultPresenter.present(event)
  })
)

const isUserError = (error: unknown): error is { readonly _tag: string; readonly message: string } =>
  typeof error === "object" && error !== null && "_tag" in error && "message" in error &&
  typeof (error as { message: unknown }).message === "string"

/**
 * Renders a failed command: typed errors as their message, defects with their stack (they are
 * bugs). CLI parse errors were already shown by the presenter.
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
          // Parse errors were already printed by the presenter (cliOutputLayer).
          if (!CliError.isCliError(error)) yield* Console.error(`simmer: ${error.message}`)
          process.exitCode = error._tag === "RunFailed" ? ExitCode.runFailed : ExitCode.failure
          return
        }
        yield* Console.error(`simmer: internal error (please report it):\n${Cause.pretty(cause)}`)
        process.exitCode = ExitCode.defect
      })
    )
  )
