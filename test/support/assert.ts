// The few checks node:assert/strict has no single call for, built on it so every test speaks
// one assertion library: "contains" for strings and arrays, and "has these fields" for objects.
import assert from 'node:assert/strict';
import { inspect, isDeepStrictEqual } from 'node:util';

const show = (v: unknown): string => inspect(v, { depth: 4, breakLength: Infinity, maxStringLength: 400 });

/** A string contains a substring, or an array holds an element (===). */
export function assertIncludes(haystack: string | readonly unknown[] | undefined | null, needle: unknown, message?: string): void {
  assert.ok(haystack != null && (haystack as { includes(x: unknown): boolean }).includes(needle), message ?? `expected ${show(haystack)} to include ${show(needle)}`);
}

/** A string does not contain a substring, or an array does not hold an element (===). */
export function assertExcludes(haystack: string | readonly unknown[] | undefined | null, needle: unknown, message?: string): void {
  assert.ok(haystack != null, message ?? `expected a string or an array, got ${show(haystack)}`);
  assert.ok(!(haystack as { includes(x: unknown): boolean }).includes(needle), message ?? `expected ${show(haystack)} not to include ${show(needle)}`);
}

/** An array holds an element deep-equal to `item`. */
export function assertIncludesDeep(array: readonly unknown[] | undefined | null, item: unknown, message?: string): void {
  assert.ok(array?.some((x) => isDeepStrictEqual(x, item)), message ?? `expected ${show(array)} to hold ${show(item)}`);
}

/** Each field of `expected` is present in `actual` and deep-equal to it; other fields may be anything. */
export function assertFields(actual: unknown, expected: Record<string, unknown>, message?: string): void {
  assert.ok(actual !== null && typeof actual === 'object', message ?? `expected an object, got ${show(actual)}`);
  const present = Object.keys(expected).filter((k) => k in actual);
  const picked = Object.fromEntries(present.map((k) => [k, (actual as Record<string, unknown>)[k]]));
  assert.deepEqual(picked, expected, message);
}
