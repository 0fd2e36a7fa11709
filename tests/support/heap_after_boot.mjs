// The heap a device uses after boot, measured on MicroPython's 32-bit WebAssembly port (a board's
// pointers are 32-bit too; the unix port on this machine is 64-bit and doubles every object).
//
//   node tests/support/heap_after_boot.mjs < request.json   (heap_after_boot.py writes the request)
//
// Request: {"files": {"/lib/firmware/lib/mqtt.mpy": "<base64>", "/main.py": ..., "/config.json": ...,
//           "/board.json": ...}, "modules": ["firmware.lib.runtime", ...], "heap_bytes": N}
// The files are the role's provisioning image, laid out as on a board. Runs the real /main.py's main()
// with stand-ins for `machine` and `network` (a Wi-Fi that is up at once) until it would start the event
// loop (firmware.drivers.board.run_forever), and prints one JSON line:
//   {"heap_bytes": N, "baseline": N, "after_imports": N, "after_boot": N, "free_after_boot": N}
// (bytes allocated after a collection: the interpreter alone; with the modules main() imports; after
// main() has built the panel driver, font, app and runtime).

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const PACKAGE = join(resolve(HERE, "../.."), "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs");

// The ESP32's hardware as far as booting needs it; the objects they make are a few hundred bytes.
const STAND_INS = {
  machine: `
class _Device:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_FALLING = 2
    IRQ_RISING = 1
    PERIODIC = 1
    ONE_SHOT = 0
    def __init__(self, *args, **kwargs):
        pass
    def value(self, v=None):
        return 1
    def __getattr__(self, name):
        return lambda *args, **kwargs: None
Pin = SPI = I2C = Timer = PWM = _Device
class WDT:
    def __init__(self, id=0, timeout=5000):
        pass
    def feed(self):
        pass
def reset():
    raise SystemExit("machine.reset()")
def unique_id():
    return b"\\x02\\x00\\x00\\x00\\x00\\x42"
def freq(hz=None):
    return 240000000
`,
  network: `
STA_IF = 0
AP_IF = 1
STAT_GOT_IP = 1010
def hostname(name=None):
    return "esp32"
class WLAN:
    def __init__(self, interface=STA_IF):
        pass
    def active(self, on=None):
        return True
    def config(self, *args, **kwargs):
        if args == ("mac",):
            return b"\\x02\\x00\\x00\\x00\\x00\\x42"
        return None
    def isconnected(self):
        return True
    def connect(self, *args, **kwargs):
        pass
    def disconnect(self):
        pass
    def status(self, *args):
        return -60 if args else STAT_GOT_IP
    def ifconfig(self, *args):
        return ("192.168.10.42", "255.255.255.0", "192.168.10.1", "192.168.10.1")
`,
};

const MEASURE = (modules) => `
import gc, json, sys
import machine, network  # the stand-ins: part of the baseline, not of the firmware
gc.collect()
_baseline = gc.mem_alloc()
${modules.map((name) => `import ${name}`).join("\n")}
gc.collect()
_after_imports = gc.mem_alloc()
import firmware.drivers.board as _board
_started = []
_board.run_forever = lambda coro: _started.append(coro)  # the event loop would run from here on
_main = {"__name__": "__heap__"}
with open("/main.py") as _f:
    exec(_f.read(), _main)
class _Watchdog:
    def feed(self):
        pass
_main["main"](_Watchdog())
gc.collect()
_result = json.dumps({"baseline": _baseline, "after_imports": _after_imports, "after_boot": gc.mem_alloc(),
                      "free_after_boot": gc.mem_free(), "started": len(_started)})
`;

async function main() {
  const request = JSON.parse(readFileSync(0, "utf8"));
  const { loadMicroPython } = await import(PACKAGE);
  const printed = [];
  const mp = await loadMicroPython({
    stdout: (line) => printed.push(line), stderr: (line) => printed.push(line), linebuffer: true,
    heapsize: request.heap_bytes,
  });
  for (const [path, data] of Object.entries(request.files)) {
    mp.FS.mkdirTree(dirname(path));
    mp.FS.writeFile(path, Buffer.from(data, "base64"));
  }
  mp.FS.mkdirTree("/lib");
  for (const [name, source] of Object.entries(STAND_INS)) mp.FS.writeFile(`/lib/${name}.py`, source);
  try {
    mp.runPython(MEASURE(request.modules));
  } catch (err) {
    process.stderr.write(printed.join("\n") + "\n" + (err.message || err) + "\n");
    process.exit(1);
  }
  const result = JSON.parse(mp.globals.get("_result"));
  process.stdout.write(JSON.stringify({ heap_bytes: request.heap_bytes, ...result, log: printed }) + "\n");
}

main().catch((err) => {
  process.stderr.write(`heap_after_boot.mjs: ${err.stack || err}\n`);
  process.exit(2);
});
