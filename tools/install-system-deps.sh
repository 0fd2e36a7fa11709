#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those missing.
# Usage: tools/install-system-deps.sh [--test]
#   always: mosquitto (the brokers run as our own processes, never the system service),
#           espeak-ng and alsa-utils (spoken calls), v4l-utils (document camera check),
#           libusb-1.0-0 (USB ticket printers), unifont (the devices' subset fonts)
#   --test: chromium and CJK fonts for the browser tests, PostgreSQL for the fleet's database tests,
#           faketime for `make test-clock` (the suite with the clock at 16:30 UTC),
#           systemd for `systemd-analyze verify` of the Pi package's units (no systemd needs to run)
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

have_cmd npm || need+=(npm)
have_cmd mosquitto || need+=(mosquitto)
have_cmd mosquitto_passwd || need+=(mosquitto-clients)
have_cmd espeak-ng || need+=(espeak-ng)      # offline Mandarin voice for spoken calls
have_cmd aplay || need+=(alsa-utils)         # plays the rendered calls through the speaker
have_cmd v4l2-ctl || need+=(v4l-utils)       # takes a frame from the document camera (高拍仪)
{ ls /usr/lib/*/libusb-1.0.so.0 || ls /lib/*/libusb-1.0.so.0; } >/dev/null 2>&1 || need+=(libusb-1.0-0)  # pyusb
[ -f /usr/share/unifont/unifont.hex ] || need+=(unifont)  # glyphs of the panels' subset fonts (tools/make_font.py)
if [ "${1:-}" = "--test" ]; then
  have_cmd chromium || need+=(chromium)
  [ -d /usr/share/fonts/opentype/noto ] || need+=(fonts-noto-cjk)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  have_cmd faketime || need+=(faketime)
  have_cmd systemd-analyze || need+=(systemd)  # tests/edge/test_pi_package.py
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
