#!/usr/bin/env bash
# Installs what the tests need when it is missing and can be installed; otherwise says exactly
# what to install. Tests start their own redis-server (and, for the failover test, sentinels:
# `redis-server --sentinel`, the same binary) on free ports: it must be on PATH.
set -euo pipefail

can_apt() { [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; }
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)

if [ ${#need_apt[@]} -gt 0 ]; then
  if can_apt; then
    echo "installing ${need_apt[*]} with apt-get" >&2
    apt_install "${need_apt[@]}"
    # The package may start a system service on 6379; tests never use it.
  else
    echo "missing: ${need_apt[*]}. Install it with: sudo apt-get install -y ${need_apt[*]} (macOS: brew install redis)" >&2
    exit 1
  fi
fi

# Sentinel mode is built into redis-server; a build without it cannot run the failover test.
case "$(redis-server --help 2>&1 || true)" in
*--sentinel*) ;;
*) echo "WARNING: this redis-server has no --sentinel mode; the Redis failover test will fail" >&2 ;;
esac

# optional_tool NAME PACKAGES... installs a tool one test needs. Without it that test skips
# loudly, or fails when BACKFILL_REQUIRE_ALL=1 (as .ci/run sets).
optional_tool() {
  local what=$1
  shift
  if can_apt; then
    echo "installing $* with apt-get (for $what)" >&2
    if ! apt_install "$@"; then
      echo "WARNING: could not install $*; $what will be SKIPPED (FAILED under BACKFILL_REQUIRE_ALL=1)" >&2
    fi
  else
    echo "WARNING: $* missing; $what will be SKIPPED (FAILED under BACKFILL_REQUIRE_ALL=1)." \
      "Install it with: sudo apt-get install -y $*" >&2
  fi
}

# --- Chromium, for the settings page's browser test (internal/webui) -------------------------
# Debian's package is "chromium"; the test looks for it at /usr/bin/chromium or on PATH
# (BACKFILL_CHROMIUM overrides).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 &&
  [ -z "${BACKFILL_CHROMIUM:-}" ]; then
  optional_tool "the browser test of the settings page" chromium
fi

# --- Node.js and npm, for the jsforce conformance test of the Salesforce simulator ----------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  optional_tool "the jsforce conformance test of the Salesforce simulator" nodejs npm
fi
