/** What `ebmesh bench` and scenario authors use; the rest stays inside src/bench. */
export { runLoadgen, parseLoadgenOutput, loadgenArgs, defaultLoadgenPath, type LoadgenOptions, type LoadResult } from './loadgen.js';
export { runWrk, parseWrkOutput, type WrkOptions } from './wrk.js';
export { median, mean, stdev, summarize, ratio, medianDistribution, DEFAULT_NOISY_CV, type Summary, type Ratio, type NoiseVerdict } from './stats.js';
export { sampleFootprint, processTree, bpfFootprint, type Footprint, type FootprintSampler, type BpfFootprint } from './footprint.js';
export { describeMachine, toolVersion, DEFAULT_TOOL_PROBES, type MachineInfo, type ToolProbe } from './machine.js';
export { analyzeScenario, type ConfigSummary } from './analysis.js';
export { writeReport, renderMarkdown, type BenchReport, type ScenarioReport } from './report.js';
export { runFromLoad, type Scenario, type ScenarioContext, type ScenarioResult, type ConfigResult, type RunResult } from './scenario.js';
export { runBench, type BenchOptions, type BenchOutcome } from './runner.js';
export { startNginx, freePort, type NginxServer, type NginxOptions } from './nginx.js';
export { loopback, loopbackScenario, type LoopbackSettings } from './scenarios/loopback.js';
