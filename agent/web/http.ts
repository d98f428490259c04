// Small, bounded helpers for the status page's HTTP server. Every byte from a browser is
// untrusted: bodies and cookie headers are read up to a cap, and every answer carries
// headers that keep the page from being framed, sniffed or fed outside scripts.
import type { IncomingMessage, ServerResponse } from 'node:http';

export const MAX_JSON_BODY = 4 * 1024;
export const MAX_COOKIE_HEADER = 4 * 1024;
const MAX_COOKIES = 32;

export const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** Status codes and the codes in `{ "error": { "code" } }` of the local API (docs/web.md). */
export type ApiErrorCode =
  | 'web.bad_request'
  | 'web.not_found'
  | 'web.method_not_allowed'
  | 'web.login_required'
  | 'web.login_failed'
  | 'web.login_disabled'
  | 'web.rate_limited'
  | 'web.csrf'
  | 'web.too_large'
  | 'web.no_space'
  | 'web.upload_failed'
  | 'web.busy'
  | 'web.internal';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Parse a Cookie header into at most 32 name/value pairs, from at most 4 KiB. */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header || header.length > MAX_COOKIE_HEADER) return out;
  for (const part of header.split(';', MAX_COOKIES)) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name) || !/^[A-Za-z0-9_.~-]{0,256}$/.test(value)) continue;
    if (!out.has(name)) out.set(name, value);
  }
  return out;
}

/** Read a small JSON object body; anything larger than the cap is refused unread. */
export async function readJsonBody(req: IncomingMessage, max = MAX_JSON_BODY): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new ApiError(415, 'web.bad_request', 'send application/json');
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > max) throw new ApiError(413, 'web.too_large', `the body may be at most ${max} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new ApiError(413, 'web.too_large', `the body may be at most ${max} bytes`);
    chunks.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ApiError(400, 'web.bad_request', 'the body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ApiError(400, 'web.bad_request', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

export function sendError(res: ServerResponse, err: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, err.status, { error: { code: err.code, message: err.message } }, err.headers);
}

/**
 * A change must come from the page itself: when the browser says where the request came
 * from (Origin, or Sec-Fetch-Site), it must be this same origin.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  const host = req.headers.host;
  return typeof host === 'string' && (origin === `http://${host}` || origin === `https://${host}`);
}

/** The client's address, for rate limits (no proxy headers are trusted). */
export function clientOf(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}
