// Benchmark dispatcher: `npm run bench -- [suite…] [--quick] [--json FILE]`.
// Runs each named suite (all of them when none is named), prints its table and targets, and
// writes the results with the machine's facts to bench/results/<suite>.json (or to FILE,
// all suites in one document).

import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runActorsBench } from "./actors.js";
import { formatTable, formatTargets, machineFacts, type BenchOptions, type SuiteResult } from "./report.js";

type SuiteRunner = (options: BenchOptions) => Promise<SuiteResult>;

interface Suite {
  about: string;
  /** The runner, or null when this build does not have the suite. */
  load(): Promise<SuiteRunner | null>;
}

const SUITES: Record<string, Suite> = {
  actors: { about: "tell throughput and ask latency: same worker, cross worker, cross process, vs raw NATS", load: async () => runActorsBench },
  // Loaded from its own bundle, not imported: a checkout without bench/log.ts still builds,
  // and the suite's own "run when executed directly" guard stays inert.
  log: { about: "partition log append, read and recovery vs raw file I/O", load: () => optionalSuite("./log.js", "runLogBench") },
};

async function optionalSuite(bundle: string, exportName: string): Promise<SuiteRunner | null> {
  const url = new URL(bundle, import.meta.url);
  if (!existsSync(url)) return null;
  const mod = (await import(url.href)) as Record<string, unknown>;
  return typeof mod[exportName] === "function" ? (mod[exportName] as SuiteRunner) : null;
}

const USAGE = `usage: npm run bench -- [suite…] [--quick] [--json FILE]

suites (default: all that this build has):
${Object.entries(SUITES)
  .map(([name, s]) => `  ${name.padEnd(10)} ${s.about}`)
  .join("\n")}

  --quick      small sizes, one repetition (each suite < 20 s)
  --json FILE  write all results to FILE (default: bench/results/<suite>.json per suite)
  --help       this text`;

interface Args {
  suites: string[];
  quick: boolean;
  json: string | null;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { suites: [], quick: false, json: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else if (a === "--quick") args.quick = true;
    else if (a === "--json") {
      const file = argv[++i];
      if (!file || file.startsWith("--")) fail("--json needs a file name");
      args.json = file;
    } else if (a.startsWith("--json=")) args.json = a.slice("--json=".length);
    else if (a.startsWith("-")) fail(`unknown option ${a}`);
    else if (!(a in SUITES)) fail(`unknown suite "${a}" (known: ${Object.keys(SUITES).join(", ")})`);
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
  console.log(`machine: ${machine.cores} cores (${machine.cpuModel}), ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB, node ${machine.node}, ${machine.natsServer}, commit ${machine.gitCommit.slice(0, 10)}${machine.gitDirty ? " (dirty)" : ""}`);
  const runners = await loadSuites(args.suites);
  const options: BenchOptions = { quick: args.quick, log: (line) => console.error(`  ${line}`) };
  const results: SuiteResult[] = [];
  for (const [name, run] of runners) {
    const started = Date.now();
    console.error(`bench ${name}${args.quick ? " (quick)" : ""}…`);
    const result = await run(options);
    results.push(result);
    console.log(`\n${result.title}\n\n${formatTable(result.columns, result.rows)}\n`);
    if (result.notes?.length) console.log(result.notes.map((n) => `note: ${n}`).join("\n") + "\n");
    if (result.targets.length) console.log(formatTargets(result.targets) + "\n");
    console.log(`(${name}: ${((Date.now() - started) / 1000).toFixed(1)} s)`);
    if (!args.json) writeJson(join(root, "bench", "results", `${name}.json`), { machine, quick: args.quick, ...result });
  }
  if (args.json) writeJson(resolve(args.json), { machine, quick: args.quick, suites: results });
}

/** Runners of the named suites (all available ones when none is named). */
async function loadSuites(named: string[]): Promise<Array<[string, SuiteRunner]>> {
  const runners: Array<[string, SuiteRunner]> = [];
  for (const name of named.length ? named : Object.keys(SUITES)) {
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
  () => process.exit(0),
  (e) => {
    console.error("bench failed:", e);
    process.exit(1);
  },
);
