#!/usr/bin/env bash
# Installs what the tests need when it is missing and can be installed; otherwise says exactly
# what to install. Tests start their own redis-server on a free port: it must be on PATH.
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need_apt[*]} with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    # The package may start a system service on 6379; tests never use it.
  else
    echo "missing: ${need_apt[*]}. Install it with: sudo apt-get install -y ${need_apt[*]} (macOS: brew install redis)" >&2
    exit 1
  fi
fi

# --- Chromium, for the settings page's browser test (internal/webui) -------------------------
# Optional: without it that one test skips and says so loudly, so a missing browser never fails
# the build. Debian's package is "chromium"; the test looks for it at /usr/bin/chromium or on
# PATH (BACKFILL_CHROMIUM overrides).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 &&
  [ -z "${BACKFILL_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium with apt-get (for the browser test of the settings page)" >&2
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
      echo "WARNING: could not install chromium; the browser test of the settings page will be SKIPPED" >&2
    fi
  else
    echo "WARNING: chromium is missing; the browser test of the settings page will be SKIPPED." \
      "Install it with: sudo apt-get install -y chromium" >&2
  fi
fi
