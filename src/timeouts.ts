/**
 * Settles as `work` does, or as `fallback()` does once `ms` have passed
 * (return a value or a promise of one to go on without the result, throw to
 * fail). `work` is not cancelled: it finishes, or not, on its own.
 */
export async function within<T, F>(work: Promise<T>, ms: number, fallback: () => F | PromiseLike<F>): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<F>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(fallback());
      } catch (error) {
        reject(error);
      }
    }, ms);
  });
  try {
    return await Promise.race([work, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
