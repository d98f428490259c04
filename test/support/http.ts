// Tiny HTTP client for tests that probe services on the host's loopback ports.
import http from 'node:http';

/** GET a URL on the host; resolves with status and body, or status 0 when nothing answers. */
export function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(timeoutMs, () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

/** Poll until GET url answers 200, or give up after waitMs (then return what was seen last). */
export async function waitForBody(url: string, waitMs = 15000): Promise<string> {
  const until = Date.now() + waitMs;
  let last = { status: 0, body: '' };
  while (Date.now() < until) {
    last = await httpGet(url);
    if (last.status === 200) return last.body.trim();
    await new Promise((r) => setTimeout(r, 200));
  }
  return `status ${last.status}`;
}
