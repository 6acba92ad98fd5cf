// Builds every entry point into dist/ with esbuild: one bundle per CLI, library, worker,
// test suite and benchmark. npm packages stay external (resolved from node_modules at run
// time) so bundles stay small and the build takes well under a few seconds.
import { build } from "esbuild";
import { readdirSync, existsSync, statSync, mkdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";

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
const native = buildNative();
if (process.env.SKEIN_BUILD_QUIET !== "1") {
  console.error(`build: ${Object.keys(entryPoints).length} bundles${native ? ` + ${native}` : ""} in ${Date.now() - started} ms`);
}

/**
 * Compiles native/crc32c.c (CRC32C on three interleaved SSE4.2 chains, ~4x @node-rs/crc32 here)
 * into dist/native/crc32c.node with the system C compiler and Node's own headers. Optional:
 * without a compiler, headers or an x86-64 CPU, protocol/crc32c.ts uses @node-rs/crc32.
 */
function buildNative() {
  const src = join(root, "native", "crc32c.c");
  const out = join(root, "dist", "native", "crc32c.node");
  if (!existsSync(src) || process.env.SKEIN_NO_NATIVE === "1") return "";
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return "native crc32c (up to date)";
  const headers = [join(dirname(process.execPath), "..", "include", "node"), "/usr/include/node", "/usr/local/include/node"].find((d) =>
    existsSync(join(d, "node_api.h")),
  );
  const cc = ["cc", "gcc", "clang"].find((c) => spawnSync(c, ["--version"]).status === 0);
  if (!headers || !cc) {
    console.error(`build: native crc32c skipped (${!cc ? "no C compiler (apt-get install gcc)" : "no Node headers (node_api.h)"}); using @node-rs/crc32`);
    return "";
  }
  mkdirSync(dirname(out), { recursive: true });
  const r = spawnSync(cc, ["-O2", "-shared", "-fPIC", "-Wall", `-I${headers}`, "-DNODE_GYP_MODULE_NAME=skein_crc32c", src, "-o", out], { encoding: "utf8" });
  if (r.status !== 0) {
    console.error(`build: native crc32c failed to compile; using @node-rs/crc32\n${r.stderr}`);
    return "";
  }
  return "native crc32c";
}
