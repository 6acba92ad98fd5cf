// Builds every entry point into dist/ with esbuild: one bundle per CLI, library, worker,
// test suite and benchmark. npm packages stay external (resolved from node_modules at run
// time) so bundles stay small and the build takes well under a few seconds.
import { build } from "esbuild";
import { readdirSync, existsSync, statSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const started = Date.now();

function filesIn(dir, suffix) {
  const abs = join(root, dir);
  if (!existsSync(abs)) return [];
  const out = [];
  for (const name of readdirSync(abs)) {
    const p = join(abs, name);
    if (statSync(p).isDirectory()) out.push(...filesIn(join(dir, name), suffix));
    else if (name.endsWith(suffix)) out.push(join(dir, name));
  }
  return out;
}

const entries = {
  skein: "bin/skein.ts",
  index: "index.ts",
  runtime: "runtime/mod.ts",
  worker: "runtime/worker-entry.ts",
  actors: "actors/mod.ts",
};
for (const f of filesIn("test", ".test.ts")) entries[f.replace(/\.ts$/, "")] = f;
for (const f of filesIn("test/fixtures", ".ts")) entries[f.replace(/\.ts$/, "")] = f;
for (const f of filesIn("bench", ".ts")) entries[f.replace(/\.ts$/, "")] = f;

const entryPoints = Object.fromEntries(
  Object.entries(entries).filter(([, src]) => existsSync(join(root, src))),
);

await build({
  entryPoints,
  outdir: join(root, "dist"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "linked",
  logLevel: "warning",
  banner: { js: "#!/usr/bin/env node" },
});
if (process.env.SKEIN_BUILD_QUIET !== "1") {
  console.error(`build: ${Object.keys(entryPoints).length} bundles in ${Date.now() - started} ms`);
}
