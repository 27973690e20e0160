/** A JSON value: what documents render to, what audit rows and table rows hold. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
