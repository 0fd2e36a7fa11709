"""Build the edge agent's Debian package for Raspberry Pi OS: `make deb` (python -m tools.build_deb).

The package is `Architecture: all`: the agent is Python, and its pinned Python packages (EDGE_REQUIREMENTS,
their versions from requirements.txt, the one list of pins) are installed into a virtual environment by the
postinst on the Pi. Debian 12's own python3-* packages are too old for the agent (paho-mqtt 1.6 against
2.x, no aiomqtt) and some of its packages are compiled (pydantic-core, Pillow), so they cannot be copied
from this machine into an arm64 package either. `--wheels` (make deb WHEELS=1) puts the arm64 wheels for
Python 3.11 into the package (pip download, so it needs the index once, here), and the Pi then installs
without a network; without it, the Pi's pip fetches them from its configured index (a county mirror).

Version: the project's version and the number of commits (`0.1.0+r812`), so every build of a newer
commit sorts after the previous one (upgrades and `service-center rollback` compare them with dpkg).
The version is written into the package as edge_agent/VERSION: edge_health reports it to the county.

Layout on the Pi (packaging/pi/README.md):
    /usr/lib/service-center-edge/app/{edge_agent,protocol}   the agent, read-only
    /usr/lib/service-center-edge/{requirements.txt,setup,display-session[,wheels/]}
    /usr/sbin/service-center                                  the technician's command and the units' entry
    /lib/systemd/system/service-center-*                      broker, agent, display, screens, backup timer
    /usr/lib/systemd/journald.conf.d/service-center-edge.conf journal kept on the SD card, bounded
    /usr/share/doc/service-center-edge/{README.md,center.toml.example}
    /etc/service-center/center.toml                           made from the example at first install
    /var/lib/service-center-edge/{venv,data,broker,generated,screens,packages}, /var/backups/service-center-edge
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging" / "pi"
PACKAGE = "service-center-edge"
# What the agent imports beyond the standard library (and what those need, which pip resolves).
EDGE_REQUIREMENTS = ("fastapi", "uvicorn", "jinja2", "python-multipart", "paho-mqtt", "aiomqtt", "python-escpos",
                     "httpx", "pyserial", "pyusb")
APP_PACKAGES = ("edge_agent", "protocol")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", "VERSION")
UNITS = ("service-center-broker.service", "service-center-edge.service", "service-center-display.service",
         "service-center-screen@.service", "service-center-backup.service", "service-center-backup.timer")
WHEEL_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64", "linux_aarch64")


def project_version() -> str:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise SystemExit("build_deb: no version in pyproject.toml")
    try:
        commits = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return match[1]
    return f"{match[1]}+r{commits}"


def edge_requirements(requirements: Path = REPO / "requirements.txt") -> list[str]:
    """The pinned lines of requirements.txt for EDGE_REQUIREMENTS, in that order; all must be pinned there."""
    pins = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        spec = line.split("#", 1)[0].split(";", 1)[0].strip()
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==\S+$", spec)
        if match:
            pins[match[1].lower().replace("_", "-")] = spec
    missing = [name for name in EDGE_REQUIREMENTS if name not in pins]
    if missing:
        raise SystemExit(f"build_deb: not pinned in requirements.txt: {', '.join(missing)}")
    return [pins[name] for name in EDGE_REQUIREMENTS]


def _install(source: Path, target: Path, mode: int = 0o644) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(mode)


def stage(root: Path, version: str, wheels: bool = False) -> None:
    """The package's files under `root`, DEBIAN/ included."""
    lib = root / "usr/lib" / PACKAGE
    for name in APP_PACKAGES:
        shutil.copytree(REPO / name, lib / "app" / name, ignore=IGNORED)
    (lib / "app/edge_agent/VERSION").write_text(version + "\n", encoding="utf-8")
    requirements = lib / "requirements.txt"
    requirements.write_text("# The edge agent's Python packages, pinned as in the project's requirements.txt\n"
                            + "\n".join(edge_requirements()) + "\n", encoding="utf-8")
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                        "--python-version", "3.11", *[f"--platform={p}" for p in WHEEL_PLATFORMS],
                        "-r", str(requirements), "-d", str(lib / "wheels")], check=True)
    _install(PACKAGING / "setup", lib / "setup", 0o755)
    _install(PACKAGING / "display-session", lib / "display-session", 0o755)
    _install(PACKAGING / "service-center", root / "usr/sbin/service-center", 0o755)
    for unit in UNITS:
        _install(PACKAGING / "systemd" / unit, root / "lib/systemd/system" / unit)
    _install(PACKAGING / "journald.conf", root / "usr/lib/systemd/journald.conf.d" / f"{PACKAGE}.conf")
    doc = root / "usr/share/doc" / PACKAGE
    _install(PACKAGING / "README.md", doc / "README.md")
    _install(PACKAGING / "center.toml.example", doc / "center.toml.example")
    for directory, _dirs, files in os.walk(root):
        Path(directory).chmod(0o755)
        for name in files:  # a source tree's modes vary with the umask of whoever checked it out
            path = Path(directory) / name
            path.chmod(0o755 if os.access(path, os.X_OK) and path.suffix not in (".py", ".toml", ".md") else 0o644)
    debian = root / "DEBIAN"
    debian.mkdir()
    size_kib = sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) // 1024 + 1
    control = (PACKAGING / "debian/control").read_text(encoding="utf-8")
    (debian / "control").write_text(control.replace("@VERSION@", version).replace("@INSTALLED_SIZE@", str(size_kib)),
                                    encoding="utf-8")
    for script in ("preinst", "postinst", "prerm", "postrm"):
        _install(PACKAGING / "debian" / script, debian / script, 0o755)
    sums = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and debian not in p.parents):
        sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.relative_to(root)}")  # noqa: S324 dpkg's
    (debian / "md5sums").write_text("\n".join(sums) + "\n", encoding="utf-8")


def build(out_dir: Path, version: str | None = None, wheels: bool = False) -> Path:
    version = version or project_version()
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir / f"{PACKAGE}_{version}_all"
    shutil.rmtree(root, ignore_errors=True)
    try:
        stage(root, version, wheels)
        deb = out_dir / f"{PACKAGE}_{version}_all.deb"
        # gzip: a quick build; the package is small either way.
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)], check=True,
                       stdout=subprocess.DEVNULL)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return deb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_deb", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "deb")
    parser.add_argument("--version", help="instead of <project version>+r<commits>")
    parser.add_argument("--wheels", action="store_true", help="carry the arm64 wheels: installs without a network")
    args = parser.parse_args(argv)
    print(build(args.out, args.version, args.wheels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
