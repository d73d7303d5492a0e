/** A least-squares line, and how well the points pin its slope down. */
export interface Line {
  slope: number;
  intercept: number;
  /** the standard error of the slope (NaN with fewer than three points: no residual to judge by) */
  slopeSe: number;
}

/**
 * The least-squares line through `points` ([x, y]): the load tool's RSS growth over time, and
 * bench:memory's RSS against sessions held. There two readings put all of one step's noise (V8
 * growing a space, the allocator keeping pages) on the slope; a line through several steps shows
 * it in the slope's standard error.
 */
export function fitLine(points: ReadonlyArray<readonly [number, number]>): Line {
  const n = points.length;
  if (n < 2) throw new RangeError('a line needs two points');
  let mx = 0;
  let my = 0;
  for (const [x, y] of points) {
    mx += x / n;
    my += y / n;
  }
  let sxx = 0;
  let sxy = 0;
  for (const [x, y] of points) {
    sxx += (x - mx) ** 2;
    sxy += (x - mx) * (y - my);
  }
  if (sxx === 0) throw new RangeError('a line needs two different x');
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let sse = 0;
  for (const [x, y] of points) sse += (y - intercept - slope * x) ** 2;
  return { slope, intercept, slopeSe: n > 2 ? Math.sqrt(sse / (n - 2) / sxx) : NaN };
}
