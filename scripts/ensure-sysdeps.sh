#!/usr/bin/env bash
# Makes sure the servers the tests and the demo start privately are installed:
# redis-server (state store), PostgreSQL (the e2e suite's second metadata DB), and Chromium with
# its driver (the dashboard is tested in a real headless browser).
# Installs the Debian packages when run as root; otherwise says what to install.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # the packages start system services we do not use; tests start their own on free ports
  exit 0
fi
echo "missing: ${missing[*]}. Install them (e.g. 'sudo apt-get install ${missing[*]}') and run again." >&2
exit 1
