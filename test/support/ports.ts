// Host ports the tests publish services on. Each test file has fixed ports of its own
// (docs/testing.md lists them), so that different files may run at the same time.
// CAISSON_TEST_PORT_OFFSET moves them all, for a second run of the same files at the same
// time: scripts/test.sh's stage 2 runs the engine matrix (engines whose published ports
// answer in this machine's network namespace) beside stage 1 with an offset of 1000.
export function testPort(port: number): number {
  const offset = Number(process.env.CAISSON_TEST_PORT_OFFSET ?? 0);
  if (!Number.isInteger(offset) || offset < 0 || port + offset > 65535) throw new Error(`CAISSON_TEST_PORT_OFFSET must be a small whole number, not ${process.env.CAISSON_TEST_PORT_OFFSET}`);
  return port + offset;
}
