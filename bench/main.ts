// Benchmark dispatcher: `npm run bench -- [suite…] [--quick] [--json FILE] [--out DIR]`.
// Runs each named suite (all of them when none is named), prints its table and targets, and
// writes the results with the machine's facts to DIR/<suite>.json (default bench/results; or
// to FILE, all suites in one document), and the suites' charts as SVG plus one charts.html
// next to the JSON.

import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import cliProgress from "cli-progress";
import { runActorsBench } from "./actors.js";
import { writeCharts } from "./charts.js";
import { runConsumeBench } from "./consume.js";
import { runE2eLatencyBench } from "./e2e-latency.js";
import { runFailoverBench } from "./failover.js";
import { runPartitionsScaleBench } from "./partitions-scale.js";
import { runProduceBench } from "./produce.js";
import { formatTable, formatTargets, machineFacts, type BenchOptions, type Chart, type Progress, type SuiteResult } from "./report.js";

type SuiteRunner = (options: BenchOptions) => Promise<SuiteResult>;

interface Suite {
  about: string;
  /** The runner, or null when this build does not have the suite. */
  load(): Promise<SuiteRunner | null>;
  /** Runs only when named (not part of a plain `npm run bench`). */
  optIn?: boolean;
}

const SUITES: Record<string, Suite> = {
  produce: { about: "producer throughput (100 B/1 KB, RF 1/3, acks 1/all, 1/4 producers, 1-100 partitions) vs raw NATS, JetStream R1/R3", load: async () => runProduceBench },
  consume: { about: "consumer throughput vs raw NATS subscribe and JetStream R1/R3 ordered consumers", load: async () => runConsumeBench },
  "e2e-latency": { about: "publish->ack and produce->consume latency at fixed rates (HdrHistogram, coordinated omission corrected) vs raw NATS, JetStream R3", load: async () => runE2eLatencyBench },
  "partitions-scale": { about: "1,000/5,000/10,000 partition replicas: idle CPU, RSS, metadata propagation, produce spread over all", load: async () => runPartitionsScaleBench },
  failover: { about: "time to the first acked write after killing a leader's worker and a leader broker", load: async () => runFailoverBench },
  actors: { about: "tell throughput and ask latency: same worker, cross worker, cross process, vs raw NATS", load: async () => runActorsBench },
  // Loaded from their own bundles, not imported: a checkout without the file still builds,
  // and the suite's own "run when executed directly" guard stays inert.
  log: { about: "partition log append, read and recovery vs raw file I/O", load: () => optionalSuite("./log.js", "runLogBench") },
  groups: { about: "consumer groups: rebalance times, pause of unaffected members, commits (only when named)", load: () => optionalSuite("./groups.js", "runGroupsBench"), optIn: true },
  kafka: { about: "Kafka gateway: kafkajs and raw Kafka requests vs ClusterClient (only when named)", load: () => optionalSuite("./kafka.js", "runKafkaBench"), optIn: true },
};

/** Names that stand for several suites (issue 5 asks for `npm run bench -- clients`). */
const ALIASES: Record<string, string[]> = {
  clients: ["produce", "consume"],
};

async function optionalSuite(bundle: string, exportName: string): Promise<SuiteRunner | null> {
  const url = new URL(bundle, import.meta.url);
  if (!existsSync(url)) return null;
  const mod = (await import(url.href)) as Record<string, unknown>;
  return typeof mod[exportName] === "function" ? (mod[exportName] as SuiteRunner) : null;
}

const USAGE = `usage: npm run bench -- [suite…] [--quick] [--json FILE] [--out DIR] [--filter TEXT] [--profile DIR]
       skein bench [suite…] [options]   (the same, from the CLI)

suites (default: all that this build has, except the ones run only when named):
${Object.entries(SUITES)
  .map(([name, s]) => `  ${name.padEnd(10)} ${s.about}`)
  .join("\n")}
${Object.entries(ALIASES)
  .map(([name, suites]) => `  ${name.padEnd(10)} the same as: ${suites.join(" ")} (producer and consumer through the public API)`)
  .join("\n")}

  --quick        small sizes, one repetition (every suite together < 2 min): checks that results are well-formed
  --json FILE    write all results to FILE, charts next to it (default: DIR/<suite>.json per suite)
  --out DIR      where per-suite JSON and charts go (default bench/results)
  --filter TEXT  only the workloads whose name contains TEXT (produce, consume, e2e-latency)
  --profile DIR  CPU-profile every process a suite starts (brokers with their worker threads, load
                 clients) into DIR/<pid>-<thread>.cpuprofile
  --help         this text`;

interface Args {
  suites: string[];
  quick: boolean;
  json: string | null;
  out: string | null;
  filter: string | undefined;
  profile: string | null;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { suites: [], quick: false, json: null, out: null, filter: undefined, profile: null };
  const value = (i: number, flag: string) => {
    const v = argv[i];
    if (!v || v.startsWith("--")) fail(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else if (a === "--quick") args.quick = true;
    else if (a === "--json") args.json = value(++i, "--json");
    else if (a.startsWith("--json=")) args.json = a.slice("--json=".length);
    else if (a === "--out") args.out = value(++i, "--out");
    else if (a === "--filter") args.filter = value(++i, "--filter");
    else if (a === "--profile") args.profile = value(++i, "--profile");
    else if (a.startsWith("-")) fail(`unknown option ${a}`);
    else if (a in ALIASES) for (const s of ALIASES[a]) !args.suites.includes(s) && args.suites.push(s);
    else if (!(a in SUITES)) fail(`unknown suite "${a}" (known: ${[...Object.keys(SUITES), ...Object.keys(ALIASES)].join(", ")})`);
    else if (!args.suites.includes(a)) args.suites.push(a);
  }
  return args;
}

function fail(message: string): never {
  console.error(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
  const machine = machineFacts(root);
  console.log(`machine: ${machine.cores} cores (${machine.cpuModel}), ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB, node ${machine.node}, ${machine.natsServer}, commit ${machine.gitCommit.slice(0, 10)}${machine.gitDirty ? " (dirty)" : ""}, load average ${machine.loadAverage.join(" ")}`);
  const runners = await loadSuites(args.suites);
  if (args.profile) profileChildren(root, resolve(args.profile));
  const outDir = args.json ? dirname(resolve(args.json)) : resolve(args.out ?? join(root, "bench", "results"));
  const options: BenchOptions = {
    quick: args.quick,
    log: (line) => console.error(`  ${line}`),
    filter: args.filter,
    progress: startProgress,
  };
  const results: SuiteResult[] = [];
  const charts: Chart[] = [];
  const started = Date.now();
  const failed: string[] = [];
  for (const [name, run] of runners) {
    const suiteStarted = Date.now();
    console.error(`bench ${name}${args.quick ? " (quick)" : ""}…`);
    let result: SuiteResult;
    try {
      result = await run(options);
    } catch (e) {
      // One suite failing (a peer that timed out on a loaded machine) does not lose the others.
      console.error(`bench ${name} failed:`, e);
      console.log(`\n${name}: FAILED (${(e as Error)?.message ?? e})`);
      failed.push(name);
      continue;
    }
    results.push(result);
    charts.push(...(result.charts ?? []));
    console.log(`\n${result.title}\n\n${formatTable(result.columns, result.rows)}\n`);
    if (result.notes?.length) console.log(result.notes.map((n) => `note: ${n}`).join("\n") + "\n");
    if (result.targets.length) console.log(formatTargets(result.targets) + "\n");
    console.log(`(${name}: ${((Date.now() - suiteStarted) / 1000).toFixed(1)} s; load average now ${loadavg().map((x) => x.toFixed(2)).join(" ")})`);
    if (!args.json) writeJson(join(outDir, `${name}.json`), { machine, quick: args.quick, ...result });
  }
  if (failed.length) process.exitCode = 1;
  if (args.json) writeJson(resolve(args.json), { machine, quick: args.quick, seconds: (Date.now() - started) / 1000, failed, suites: results });
  mkdirSync(outDir, { recursive: true });
  for (const f of writeCharts(outDir, charts, `Skein benchmarks ${machine.startedAt} (${machine.gitCommit.slice(0, 10)})`)) console.log(`wrote ${f}`);
  if (args.quick) checkWellFormed(results);
}

/** Child processes inherit NODE_OPTIONS: the preload profiles each of their threads. */
function profileChildren(root: string, dir: string): void {
  const preload = join(root, "bench", "fixtures", "cpu-profile.cjs");
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --require ${preload}`.trim();
  process.env.SKEIN_CPU_PROF_DIR = dir;
  console.error(`profiling child processes into ${dir}`);
}

/**
 * --quick is for CI: every suite must have produced rows with every column, at least one
 * number, and no NaN or infinite value, whatever the sizes.
 */
function checkWellFormed(results: SuiteResult[]): void {
  const problems: string[] = [];
  for (const r of results) {
    if (r.rows.length === 0) problems.push(`${r.suite}: no rows`);
    let numbers = 0;
    for (const row of r.rows) {
      for (const c of r.columns) {
        if (!(c in row)) problems.push(`${r.suite}: a row lacks column "${c}"`);
        const v = row[c];
        if (typeof v === "number") {
          if (Number.isFinite(v)) numbers++;
          else problems.push(`${r.suite}: ${c} is ${v} in ${JSON.stringify(row)}`);
        }
      }
    }
    if (r.rows.length > 0 && numbers === 0) problems.push(`${r.suite}: no numbers at all`);
    for (const t of r.targets) if (!Number.isFinite(t.measured)) problems.push(`${r.suite}: target "${t.name}" measured ${t.measured}`);
  }
  if (problems.length) {
    console.error(`bench: results are not well-formed:\n  ${problems.slice(0, 20).join("\n  ")}`);
    process.exitCode = 1;
  } else console.log(`quick check: ${results.length} suite(s) well-formed`);
}

/** A cli-progress bar on a terminal, one line per step otherwise (CI logs); both on stderr. */
function startProgress(name: string, total: number): Progress {
  const started = Date.now();
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${name.padEnd(16)} [{bar}] {value}/{total} | {eta_formatted} left | {label}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { label: "" });
    return { tick: (label) => bar.increment(1, { label: label.slice(0, 60) }), stop: () => bar.stop() };
  }
  let done = 0;
  return {
    tick: (label) => console.error(`  [${name} ${++done}/${total} ${((Date.now() - started) / 1000).toFixed(0)} s] ${label}`),
    stop: () => undefined,
  };
}

/** Runners of the named suites (all available ones when none is named). */
async function loadSuites(named: string[]): Promise<Array<[string, SuiteRunner]>> {
  const runners: Array<[string, SuiteRunner]> = [];
  for (const name of named.length ? named : Object.keys(SUITES).filter((n) => !SUITES[n].optIn)) {
    const run = await SUITES[name].load();
    if (run) runners.push([name, run]);
    else if (named.length) fail(`suite "${name}" is not in this build (its bench file or runner export is missing)`);
  }
  return runners;
}

function writeJson(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(value, null, 2) + "\n");
  console.log(`wrote ${file}`);
}

main().then(
  // process.exitCode carries a failed suite or a --quick check that failed.
  () => process.exit(),
  (e) => {
    console.error("bench failed:", e);
    process.exit(1);
  },
);
