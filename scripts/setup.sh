#!/usr/bin/env bash
# Set up OneMap on a fresh Debian/Ubuntu machine: system packages (when root), a virtualenv in
# .venv with OneMap installed, and the web pages' libraries from the npm registry.
#   bash scripts/setup.sh            # runtime
#   bash scripts/setup.sh --test     # runtime + test tools (pytest, Chromium for browser tests)
#   bash scripts/setup.sh --vision   # + PyTorch/ultralytics (heavy; optional)
set -euo pipefail
cd "$(dirname "$0")/.."

TEST=0; VISION=0
for arg in "$@"; do
  case "$arg" in
    --test) TEST=1 ;;
    --vision) VISION=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

PACKAGES="postgresql-15 postgresql-15-postgis-3"
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs npm"
[ "$TEST" = 1 ] && PACKAGES="$PACKAGES chromium fonts-wqy-microhei"

missing=""
for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing system packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "OneMap needs these system packages; install them and run this again:" >&2
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
EXTRAS="demo"
[ "$TEST" = 1 ] && EXTRAS="$EXTRAS,test,scale"
[ "$VISION" = 1 ] && EXTRAS="$EXTRAS,vision"
.venv/bin/pip install -q -e ".[$EXTRAS]"

# The pages' libraries, exactly as package-lock.json pins them (re-run whenever it changes).
if [ ! -f web/node_modules/.package-lock.json ] || ! cmp -s web/package-lock.json web/node_modules/.onemap-lock; then
  (cd web && npm ci --no-audit --no-fund --silent && cp package-lock.json node_modules/.onemap-lock)
fi
echo "OneMap is set up in .venv"
