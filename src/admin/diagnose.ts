/**
 * Self-diagnosis: a list of checks run on demand (`GET /debug/diagnose` on the admin port,
 * `npm run doctor`), each answering with a verdict and, when not ok, what to do in words. The
 * checks themselves are in diagnose-checks.ts.
 */

export type Verdict = 'ok' | 'warn' | 'fail';

/** What one check found. */
export interface Finding {
  verdict: Verdict;
  /** what was seen, in words with the figures */
  detail: string;
  /** what to do about it; empty when ok */
  hint: string;
}

export interface CheckResult extends Finding {
  name: string;
}

export interface DiagnoseReport {
  node: string;
  mode: 'cluster' | 'embedded';
  /** the release the node runs (src/config/release.ts); absent from nodes of older releases */
  release?: string;
  /** the worst verdict of the checks */
  verdict: Verdict;
  checks: CheckResult[];
}

export interface Check {
  readonly name: string;
  /** the hint when the check throws or does not answer within its time (a backend down or hung) */
  readonly hintOnError: string;
  /** @default the runner's (2_000 ms) */
  readonly timeoutMs?: number;
  run(): Promise<Finding>;
}

/** @default 2_000 (ms): a check not settled by then is reported failed (a hung backend must not hang the report) */
/** A finding that needs nothing done. */
export const ok = (detail: string): Finding => ({ verdict: 'ok', detail, hint: '' });

export const DEFAULT_CHECK_TIMEOUT_MS = 2_000;

const RANK: Record<Verdict, number> = { ok: 0, warn: 1, fail: 2 };

/** Runs every check at once; a throw or a timeout is a `fail` naming it, never a rejection. */
export async function runChecks(checks: readonly Check[], meta: Pick<DiagnoseReport, 'node' | 'mode' | 'release'>, timeoutMs = DEFAULT_CHECK_TIMEOUT_MS): Promise<DiagnoseReport> {
  const results = await Promise.all(checks.map((check) => runOne(check, check.timeoutMs ?? timeoutMs)));
  const verdict = results.reduce<Verdict>((worst, r) => (RANK[r.verdict] > RANK[worst] ? r.verdict : worst), 'ok');
  return { ...meta, verdict, checks: results };
}

async function runOne(check: Check, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<Finding>((resolve) => {
    timer = setTimeout(() => resolve({ verdict: 'fail', detail: `no answer within ${timeoutMs} ms`, hint: check.hintOnError }), timeoutMs);
  });
  try {
    const finding = await Promise.race([check.run(), timedOut]);
    return { name: check.name, ...finding };
  } catch (err) {
    return { name: check.name, verdict: 'fail', detail: err instanceof Error ? err.message : String(err), hint: check.hintOnError };
  } finally {
    clearTimeout(timer);
  }
}

const MARK: Record<Verdict, string> = { ok: '✓', warn: '!', fail: '✗' };

/** Whether an answer has the shape of a report (what `npm run doctor` prints only then). */
export function isDiagnoseReport(x: unknown): x is DiagnoseReport {
  const r = x as Partial<DiagnoseReport> | null;
  const text = (v: unknown) => typeof v === 'string';
  return (
    typeof r === 'object' && r !== null && text(r.node) && text(r.mode) && Array.isArray(r.checks) &&
    r.checks.every((c: Partial<CheckResult> | null) => typeof c === 'object' && c !== null && text(c.name) && text(c.detail) && text(c.hint) && Object.hasOwn(MARK, c.verdict ?? ''))
  );
}

// control characters (a terminal's escape sequences among them) and bidirectional overrides: what
// a check's detail quotes (an error message, a path) is printed, never obeyed by the terminal
const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** `text` with control characters and bidirectional overrides shown as `\uXXXX`. */
export const printable = (text: string) => text.replace(HIDDEN, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** The report as a checklist for a terminal: one line per check, its hint indented below when not ok. */
export function formatChecklist(report: DiagnoseReport): string {
  const lines = [printable(`${report.node} (${report.mode}${typeof report.release === 'string' ? `, ${report.release}` : ''})`)];
  for (const c of report.checks) {
    lines.push(printable(`${MARK[c.verdict]} ${c.name}: ${c.detail}`));
    if (c.verdict !== 'ok' && c.hint) lines.push(`    → ${printable(c.hint)}`);
  }
  const count = (v: Verdict) => report.checks.filter((c) => c.verdict === v).length;
  lines.push(`${count('ok')} ok, ${count('warn')} to look at, ${count('fail')} failing`);
  return `${lines.join('\n')}\n`;
}
