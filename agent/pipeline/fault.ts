// Test-only fault injection. Inert unless CAISSON_FAULT_KILL_AFTER is set: then the
// process kills itself with SIGKILL right after the journal saved a state whose name
// equals the variable (e.g. "switching.park_old"), to prove that recovery after a crash
// at that exact point leaves the service healthy. Documented in docs/testing.md.
export function faultPoint(state: string): void {
  const target = process.env.CAISSON_FAULT_KILL_AFTER;
  if (target && target === state) process.kill(process.pid, 'SIGKILL');
}
