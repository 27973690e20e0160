/**
 * Loaded into a server process with `--import` (test/presence.test.ts): its
 * `Date.now()` runs CLOCK_SKEW_MS off, as on a machine whose clock drifted.
 */
const skewMs = Number(process.env.CLOCK_SKEW_MS);
const realNow = Date.now.bind(Date);
Date.now = () => realNow() + skewMs;
