// Runs Python files under current MicroPython (the official WebAssembly port) in Node.
//
//   node run.mjs [--dir DIR]... SCRIPT.py
//
// Every .py and .json file of each DIR is copied into /lib of MicroPython's in-memory
// filesystem (on sys.path), then SCRIPT.py runs as __main__. Exit status 0 when
// the script finishes; 1 when it raises (the traceback is printed), including
// SystemExit with a non-zero code.
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const args = process.argv.slice(2);
const dirs = [];
let script = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--dir") dirs.push(args[++i]);
  else script = args[i];
}
if (!script) {
  console.error("usage: node run.mjs [--dir DIR]... SCRIPT.py");
  process.exit(2);
}

const mp = await loadMicroPython({
  heapsize: 8 * 1024 * 1024,
  stdout: (s) => process.stdout.write(s + "\n"),
  stderr: (s) => process.stderr.write(s + "\n"),
});
mp.FS.mkdir("/lib");
for (const dir of dirs) {
  for (const name of readdirSync(dir)) {
    if (name.endsWith(".py") || name.endsWith(".json")) mp.FS.writeFile(join("/lib", name), readFileSync(join(dir, name)));
  }
}
mp.FS.mkdir("/tmp/run");
try {
  mp.runPython("import sys\nsys.path.insert(0, '/lib')\n");
  mp.runPython(readFileSync(script, "utf8"));
} catch (err) {
  console.error(`${basename(script)} failed under MicroPython:\n${err.message ?? err}`);
  process.exit(1);
}
