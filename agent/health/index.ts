export { waitHealthy, type HealthTick, type WaitHealthyOptions } from './wait.js';
export { runProbe, probeHttp, probeTcp, probeExec, probeRunning, probeContainerHealth, type ProbeResult, type ProbeContext } from './probes.js';
