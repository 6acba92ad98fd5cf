// Makes `npm start` and `npm test` work on a fresh clone: installs npm dependencies when
// node_modules is missing or older than package-lock.json, and nats-server from Debian when
// it is not on PATH and this is a root shell with apt-get (as on Skein's dev and CI
// machines); otherwise it says exactly what to install.
import { execSync, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const marker = join(root, "node_modules", ".package-lock.json");
const lock = join(root, "package-lock.json");

if (!existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs) {
  console.error("ensure-deps: installing npm dependencies (npm ci)");
  execSync("npm ci --no-audit --no-fund", { cwd: root, stdio: "inherit" });
}

const hasNats = ["nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"].some(
  (bin) => spawnSync(bin, ["--version"]).status === 0,
);
if (!hasNats) {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const hasApt = spawnSync("apt-get", ["--version"]).status === 0;
  if (isRoot && hasApt) {
    console.error("ensure-deps: nats-server not found; installing it from Debian (apt-get install nats-server)");
    execSync("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server", { stdio: "inherit", shell: "/bin/bash" });
  } else {
    console.error("ensure-deps: nats-server is not on PATH. Install it (Debian/Ubuntu: sudo apt-get install -y nats-server) and run again.");
    process.exit(1);
  }
}
