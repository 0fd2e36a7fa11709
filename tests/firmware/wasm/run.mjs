// Runs the shared firmware cases (tests/firmware/cases/test_case_*.py) under real MicroPython:
// the WebAssembly port from npm (@micropython/micropython-webassembly-pyscript).
//
//   node tests/firmware/wasm/run.mjs [test_case_protocol ...]
//
// The repository's protocol/ and firmware/ (but firmware/sim/, CPython only) are written into
// MicroPython's in-memory filesystem under /lib, the cases flat into /lib, then every function
// named test_* of every case module is called. One JSON line per case on stdout:
//   {"module": "test_case_mqtt", "case": "test_x", "ok": true}
//   {"module": "...", "case": "...", "ok": false, "error": "<MicroPython traceback>"}
// then {"summary": {"passed": n, "failed": n, "implementation": "micropython 1.27.0"}}. What the cases print goes to stderr.
// Exit status 1 when a case failed or a module did not import.
//
// The port's own CLI is not used: it exits 0 after an exception and crashes on piped stdin.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, "../../..");
const CASES = resolve(HERE, "../cases");
const PACKAGE = join(REPO, "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs");
const SKIP_DIRS = new Set(["__pycache__", "sim"]);

function filesUnder(root) {
  const out = [];
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    if (statSync(path).isDirectory()) {
      if (!SKIP_DIRS.has(name)) out.push(...filesUnder(path));
    } else if (!name.endsWith(".pyc")) {
      out.push(path);
    }
  }
  return out;
}

function copyInto(mp, source, target) {
  for (const path of filesUnder(source)) {
    const dest = join(target, relative(source, path));
    mp.FS.mkdirTree(dirname(dest));
    mp.FS.writeFile(dest, readFileSync(path));
  }
}

// Runs inside MicroPython: calls every test_* of one module, leaves the results as JSON text.
const DRIVER = `
import io, json, sys
def _run_cases(module_name):
    results = []
    try:
        module = __import__(module_name)
    except BaseException as exc:
        buf = io.StringIO()
        sys.print_exception(exc, buf)
        return json.dumps([{"case": "<import>", "ok": False, "error": buf.getvalue()}])
    names = sorted(name for name in dir(module) if name.startswith("test_"))
    for name in names:
        case = getattr(module, name)
        if not callable(case):
            continue
        try:
            case()
            results.append({"case": name, "ok": True})
        except BaseException as exc:
            buf = io.StringIO()
            sys.print_exception(exc, buf)
            results.append({"case": name, "ok": False, "error": buf.getvalue()})
    return json.dumps(results)
`;

async function main() {
  let loadMicroPython;
  try {
    ({ loadMicroPython } = await import(PACKAGE));
  } catch (err) {
    console.error(`run.mjs: MicroPython WebAssembly port missing (${err.message}); run npm install`);
    process.exit(2);
  }
  const wanted = process.argv.slice(2);
  const modules = wanted.length
    ? wanted
    : readdirSync(CASES).filter((n) => /^test_case_.*\.py$/.test(n)).map((n) => n.slice(0, -3)).sort();
  const printed = (line) => process.stderr.write(line + "\n");
  const mp = await loadMicroPython({ stdout: printed, stderr: printed, linebuffer: true, heapsize: 16 * 1024 * 1024 });
  mp.FS.mkdirTree("/lib");
  copyInto(mp, join(REPO, "protocol"), "/lib/protocol");
  copyInto(mp, join(REPO, "firmware"), "/lib/firmware");
  for (const name of readdirSync(CASES).filter((n) => n.endsWith(".py"))) {
    mp.FS.writeFile(join("/lib", name), readFileSync(join(CASES, name)));
  }
  mp.runPython(DRIVER);
  mp.runPython(`import sys\n_impl = "%s %d.%d.%d" % ((sys.implementation.name,) + tuple(sys.implementation.version[:3]))`);
  const implementation = mp.globals.get("_impl");
  let passed = 0;
  let failed = 0;
  for (const module of modules) {
    mp.runPython(`_results = _run_cases(${JSON.stringify(module)})`);
    for (const result of JSON.parse(mp.globals.get("_results"))) {
      process.stdout.write(JSON.stringify({ module, ...result }) + "\n");
      if (result.ok) passed += 1;
      else failed += 1;
    }
  }
  process.stdout.write(JSON.stringify({ summary: { passed, failed, implementation } }) + "\n");
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(`run.mjs: ${err.stack || err}`);
  process.exit(2);
});
