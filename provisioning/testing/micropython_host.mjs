// The virtual board's processor: real MicroPython (the WebAssembly port from npm,
// @micropython/micropython-webassembly-pyscript) behind JSON lines on stdin/stdout.
//
//   node provisioning/testing/micropython_host.mjs '{"mac": "a4cf12ab34cd", "capacity": 2097152,
//        "machine": "Generic ESP32 module with SPIRAM with ESP32", "heap": 4194304}'
//
// One request per line, one answer per line, in order:
//   {"op": "boot"}                          (re)start the interpreter; the files survive, like flash
//   {"op": "exec", "code": "<base64>"}      -> {"stdout": "<base64>", "error": "<traceback>"|null,
//                                               "error_type": "OSError"|"HardReset"|...|null,
//                                               "wdt": {"started": <timeout ms>|null, "feeds": N}}
//                                           (what the program did to machine.WDT: the Python side keeps
//                                           the watchdog, which outlives the interpreter like the ESP32's)
//   {"op": "run_file", "path": "/boot.py"}  the same for a file on the board (nothing when it is missing)
//   {"op": "capacity", "bytes": N, "reported": M|null}  the filesystem's size: writes past it fail with
//                                           ENOSPC; os.statvfs() reports M instead when given
//   {"op": "free"}                          -> {"free": N, "used": N, "capacity": N}
//   {"op": "files"}                         -> {"files": {"/path": "<base64>"}, "dirs": ["/lib", ...]}
//   {"op": "put", "path": "/x", "data": "<base64>"}   a file written behind the board's back (test set-up)
// Every answer has "ok": true, or "ok": false and "message".
//
// The filesystem is Emscripten's in-memory one: nothing of the host's disk is reachable. Emscripten's own
// /dev and /proc stay (its stdio needs them) but are hidden from listings of "/"; /tmp and /home are removed,
// so "/" looks like a board's flash. The filesystem calls raise the board's errno values (BOARD_OS).
//
// The port's own CLI is not used: it exits 0 after an exception and crashes on piped stdin.

import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const PACKAGE = join(resolve(HERE, "../.."), "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs");
const HIDDEN_AT_ROOT = new Set(["dev", "proc"]);
const EMSCRIPTEN_ENOSPC = 51;
const EMSCRIPTEN_O_APPEND = 1024;

const options = JSON.parse(process.argv[2] || "{}");
const MAC_HEX = options.mac || "a4cf12ab34cd";
// MicroPython's heap as gc reports it: an ESP32-WROVER's PSRAM heap is about 4 MB; a board without PSRAM has a
// few hundred KB. (The WebAssembly port's own heap is far bigger, whatever it is asked for.)
const HEAP_BYTES = options.heap || 4 * 1024 * 1024;
// os.uname().machine of the image the board runs ("<board name> with <mcu>").
const MACHINE = options.machine || "Generic ESP32 module with SPIRAM with ESP32";
let capacity = options.capacity || 2 * 1024 * 1024; // the vfs partition of a 4 MB ESP32
let reportedCapacity = null; // what os.statvfs() claims, when it is made to lie (littlefs only estimates)

// The board's hardware as MicroPython sees it: what `machine`, `network` and `os.uname()` answer on an
// ESP32. Written to a hidden folder, imported into sys.modules, and removed, so the board's files stay
// the user's only. machine.reset() raises HardReset: the Python side reboots the board when it sees it.
const HARDWARE = {
  machine: `
import binascii
_MAC = binascii.unhexlify(${JSON.stringify(MAC_HEX)})
class HardReset(BaseException):
    pass
def unique_id():
    return _MAC
def reset():
    raise HardReset()
def freq(hz=None):
    return 240000000
def reset_cause():
    return 4
class WDT:
    # The ESP32's watchdog cannot be stopped once started; the board (virtual_board.py) resets itself
    # when it is not fed in time, across Ctrl-C and soft resets, as the chip does.
    def __init__(self, id=0, timeout=5000):
        import _vboard_wdt
        _vboard_wdt.start(timeout)
    def feed(self):
        import _vboard_wdt
        _vboard_wdt.feed()
class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_FALLING = 2
    IRQ_RISING = 1
    def __init__(self, pin, mode=-1, pull=-1, value=None):
        self._pin = pin
        self._value = value or 0
    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
    def irq(self, handler=None, trigger=3):
        return None
    def on(self):
        self._value = 1
    def off(self):
        self._value = 0
`,
  network: `
import machine
STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
class WLAN:
    def __init__(self, interface=STA_IF):
        self._if = interface
        self._active = False
    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
    def config(self, name=None, **kwargs):
        if name == "mac":
            mac = bytearray(machine.unique_id())
            if self._if == AP_IF:
                mac[5] = (mac[5] + 1) & 0xFF
            return bytes(mac)
        if kwargs:
            return None
        raise ValueError("unknown config param")
    def isconnected(self):
        return False
    def connect(self, ssid=None, key=None, **kwargs):
        return None
    def disconnect(self):
        return None
    def status(self, param=None):
        return STAT_IDLE
    def ifconfig(self, *args):
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
`,
};

// What the board's own filesystem calls look like on an ESP32: errno values as on the board (the
// port's libc uses Emscripten's, ENOENT is 44 there and 2 on a board; MicroPython's `errno` module
// already has the board's), os.uname() and os.statvfs() of an ESP32 with this flash. The wrappers are
// installed once per boot, around the raw functions only, so nothing is mapped twice.
const BOARD_OS = `
import builtins, os, sys, _vboard_flash
_BOARD_ERRNO = {44: 2, 63: 1, 29: 5, 8: 9, 48: 12, 2: 13, 20: 17, 54: 20, 31: 21, 28: 22, 51: 28, 69: 30,
                37: 36, 55: 39}
def _board_error(exc):
    code = exc.args[0] if exc.args else None
    if isinstance(code, int) and code in _BOARD_ERRNO:
        return OSError(_BOARD_ERRNO[code])
    return exc
def _on_board(fn):
    def call(*args):
        try:
            return fn(*args)
        except OSError as exc:
            raise _board_error(exc)
    return call
class _BoardFile:
    def __init__(self, raw):
        self._raw = raw
        for name in ("read", "readinto", "readline", "readlines", "write", "seek", "tell", "flush", "close"):
            if hasattr(raw, name):
                setattr(self, name, _on_board(getattr(raw, name)))
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self.close()
    def __iter__(self):
        return iter(self._raw)
_raw_open = builtins.open
def _board_open(*args, **kwargs):
    try:
        return _BoardFile(_raw_open(*args, **kwargs))
    except OSError as exc:
        raise _board_error(exc)
builtins.open = _board_open
for _name in ("stat", "ilistdir", "listdir", "mkdir", "rmdir", "remove", "unlink", "rename", "chdir"):
    setattr(os, _name, _on_board(getattr(os, _name)))
_ilistdir = os.ilistdir
def _board_ilistdir(path="."):
    # littlefs gives (name, type, inode, size); the port's VfsPosix only (name, type, inode)
    base = path.rstrip("/")
    for entry in _ilistdir(path):
        size = 0
        if entry[1] == 0x8000:
            size = os.stat(base + "/" + entry[0])[6] if base or path.startswith("/") else os.stat(entry[0])[6]
        yield (entry[0], entry[1], 0, size)
os.ilistdir = _board_ilistdir
class _UnameResult(tuple):
    sysname = property(lambda self: self[0])
    nodename = property(lambda self: self[1])
    release = property(lambda self: self[2])
    version = property(lambda self: self[3])
    machine = property(lambda self: self[4])
_UNAME = _UnameResult(("esp32", "esp32", "1.27.0", "v1.27.0 on 2025-12-09", ${JSON.stringify(MACHINE)}))
os.uname = lambda: _UNAME
def _statvfs(path):
    os.stat(path)
    block = 4096
    total = _vboard_flash.capacity() // block
    free = max(0, _vboard_flash.capacity() - _vboard_flash.used()) // block
    return (block, block, total, free, free, 0, 0, 0, 0, 255)
os.statvfs = _statvfs
import gc as _gc
class _BoardHeap:
    # The WebAssembly heap is far bigger than a board's: gc reports the heap of the board emulated.
    def __getattr__(self, name):
        return getattr(_gc, name)
    def mem_alloc(self):
        return _gc.mem_alloc()
    def mem_free(self):
        return max(0, ${HEAP_BYTES} - _gc.mem_alloc())
sys.modules["gc"] = _BoardHeap()
`;

const BOARD_BOOTSTRAP = `
import sys
sys.path.insert(1, "/.hw")
import _board_os, machine, network
sys.path.remove("/.hw")
del sys.modules["_board_os"]
`;

let mp = null;
let output = [];
let wdt = { started: null, feeds: 0 }; // machine.WDT calls of the program running now
let unlimitedWrites = false; // set while the host itself restores files at boot

function isFileNode(node) {
  return node && (node.mode & 0o170000) === 0o100000;
}

function walk(FS, path, dirs, files) {
  for (const name of FS.readdir(path)) {
    if (name === "." || name === "..") continue;
    if (path === "/" && HIDDEN_AT_ROOT.has(name)) continue;
    const full = path === "/" ? "/" + name : path + "/" + name;
    const stat = FS.stat(full);
    if (FS.isDir(stat.mode)) {
      dirs.push(full);
      walk(FS, full, dirs, files);
    } else if (FS.isFile(stat.mode)) {
      files[full] = FS.readFile(full);
    }
  }
}

function snapshot() {
  const dirs = [];
  const files = {};
  if (mp) walk(mp.FS, "/", dirs, files);
  return { dirs, files };
}

function usedBytes() {
  let used = 0;
  const count = (path) => {
    for (const name of mp.FS.readdir(path)) {
      if (name === "." || name === "..") continue;
      if (path === "/" && HIDDEN_AT_ROOT.has(name)) continue;
      const full = path === "/" ? "/" + name : path + "/" + name;
      const stat = mp.FS.stat(full);
      if (mp.FS.isDir(stat.mode)) count(full);
      else used += stat.size;
    }
  };
  count("/");
  return used;
}

function limitWrites(FS) {
  const write = FS.write;
  FS.write = function (stream, buffer, offset, length, position, canOwn) {
    if (!unlimitedWrites && isFileNode(stream.node) && length > 0) {
      const size = stream.node.usedBytes || 0;
      let at = position !== undefined ? position : stream.position;
      if (stream.flags & EMSCRIPTEN_O_APPEND) at = size;
      const growth = Math.max(0, at + length - size);
      if (growth > 0 && usedBytes() + growth > capacity) throw new FS.ErrnoError(EMSCRIPTEN_ENOSPC);
    }
    return write.call(this, stream, buffer, offset, length, position, canOwn);
  };
  const readdir = FS.readdir;
  FS.readdir = function (path) {
    const names = readdir.call(this, path);
    if (FS.lookupPath(path, { follow: true }).path !== "/") return names;
    return names.filter((name) => !HIDDEN_AT_ROOT.has(name));
  };
}

function removeTree(FS, path) {
  for (const name of FS.readdir(path)) {
    if (name === "." || name === "..") continue;
    const full = path + "/" + name;
    if (FS.isDir(FS.stat(full).mode)) removeTree(FS, full);
    else FS.unlink(full);
  }
  FS.rmdir(path);
}

async function boot() {
  const saved = mp ? snapshot() : { dirs: [], files: { "/boot.py": new TextEncoder().encode(DEFAULT_BOOT_PY) } };
  const { loadMicroPython } = await import(PACKAGE);
  const collect = (bytes) => {
    for (const b of bytes) output.push(b);
  };
  const fresh = await loadMicroPython({ stdout: collect, stderr: collect, linebuffer: false, heapsize: HEAP_BYTES });
  for (const path of ["/tmp", "/home"]) removeTree(fresh.FS, path);
  unlimitedWrites = true;
  try {
    for (const dir of saved.dirs) fresh.FS.mkdirTree(dir);
    for (const [path, data] of Object.entries(saved.files)) fresh.FS.writeFile(path, data);
    fresh.FS.mkdirTree("/.hw");
    for (const [name, source] of Object.entries(HARDWARE)) fresh.FS.writeFile(`/.hw/${name}.py`, source);
    fresh.FS.writeFile("/.hw/_board_os.py", BOARD_OS);
  } finally {
    unlimitedWrites = false;
  }
  limitWrites(fresh.FS);
  fresh.registerJsModule("_vboard_wdt", {
    start: (timeoutMs) => {
      wdt.started = Number(timeoutMs);
    },
    feed: () => {
      wdt.feeds += 1;
    },
  });
  fresh.registerJsModule("_vboard_flash", {
    used: () => usedBytes(),
    capacity: () => (reportedCapacity === null ? capacity : reportedCapacity),
  });
  mp = fresh;
  try {
    mp.runPython(BOARD_BOOTSTRAP);
  } finally {
    removeTree(mp.FS, "/.hw");
  }
  output = [];
}

const DEFAULT_BOOT_PY = `# This file is executed on every boot (including wake-boot from deepsleep)
#import esp
#esp.osdebug(None)
#import webrepl
#webrepl.start()
`;

function exec(code) {
  output = [];
  wdt = { started: null, feeds: 0 };
  let error = null;
  let errorType = null;
  try {
    mp.runPython(code);
  } catch (err) {
    if (err.name !== "PythonError") throw err;
    error = err.message;
    errorType = err.type;
  }
  return { stdout: Buffer.from(output).toString("base64"), error, error_type: errorType, wdt };
}

function runFile(path) {
  let source;
  try {
    source = new TextDecoder().decode(mp.FS.readFile(path));
  } catch {
    return { stdout: "", error: null, error_type: null, missing: true };
  }
  return exec(source);
}

async function handle(request) {
  switch (request.op) {
    case "boot":
      await boot();
      return {};
    case "exec":
      return exec(Buffer.from(request.code, "base64").toString("utf8"));
    case "run_file":
      return runFile(request.path);
    case "capacity":
      capacity = request.bytes;
      reportedCapacity = request.reported ?? null;
      return {};
    case "free": {
      const used = usedBytes();
      return { used, capacity, free: Math.max(0, capacity - used) };
    }
    case "files": {
      const { dirs, files } = snapshot();
      const encoded = {};
      for (const [path, data] of Object.entries(files)) encoded[path] = Buffer.from(data).toString("base64");
      return { dirs, files: encoded };
    }
    case "put":
      unlimitedWrites = true;
      try {
        mp.FS.mkdirTree(dirname(request.path));
        mp.FS.writeFile(request.path, Buffer.from(request.data, "base64"));
      } finally {
        unlimitedWrites = false;
      }
      return {};
    default:
      throw new Error(`unknown op ${JSON.stringify(request.op)}`);
  }
}

// Requests are handled strictly one after another: the board has one CPU.
const lines = createInterface({ input: process.stdin });
let chain = Promise.resolve();
lines.on("line", (line) => {
  chain = chain.then(async () => {
    let answer;
    try {
      answer = { ok: true, ...(await handle(JSON.parse(line))) };
    } catch (err) {
      answer = { ok: false, message: String(err && err.stack ? err.stack : err) };
    }
    process.stdout.write(JSON.stringify(answer) + "\n");
  });
});
lines.on("close", () => {
  chain.then(() => process.exit(0));
});
