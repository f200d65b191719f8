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
