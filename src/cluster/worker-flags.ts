// Node flags of the forked workers. V8's young generation is a per-process cost: with Node's
// defaults it grows to 32 MiB once traffic has filled it, ~1.9 KiB per member at 17k members
// per worker, more than a member's own state. Workers get 8 MiB semi-spaces (16 MiB in all),
// unless the node flags (the supervisor's own, or NODE_OPTIONS, which workers inherit) set a size.
// `npm start` runs a single process with the same flag, and so does the bench.

export const WORKER_SEMI_SPACE_MB = 8;

const SEMI_SPACE_FLAG = /^--max[-_]semi[-_]space[-_]size(=|$)/;

/** The supervisor's execArgv plus the semi-space size, unless `execArgv` or `nodeOptions` chose one. */
export function workerExecArgv(execArgv: readonly string[], nodeOptions = ''): string[] {
  const chosen = [...execArgv, ...nodeOptions.split(/\s+/)].some((a) => SEMI_SPACE_FLAG.test(a));
  return chosen ? [...execArgv] : [...execArgv, `--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`];
}
