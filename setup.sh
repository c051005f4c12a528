#!/usr/bin/env bash
# ha-harness set-up, from nothing, idempotent. Called by the README's commands, by .ci/run and by
# `harness doctor --fix`. Steps: Python venv + the project; a Docker engine that answers; host tools
# (iptables, nsenter, mmdebstrap); the real Toxiproxy server (go install, pinned); the offline node image.
set -euo pipefail
cd "$(dirname "$0")"
TOXIPROXY_VERSION=v2.12.0   # keep in step with harness/paths.py
HARNESS_HOME=${HARNESS_HOME:-$HOME/.local/share/ha-harness}
export HARNESS_HOME
step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
fail() { printf '\033[31msetup: error: %s\033[0m\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
is_debian() { [ -r /etc/debian_version ] && command -v apt-get >/dev/null; }
apt_updated=""
apt_install() {
  is_root && is_debian || fail "need Debian packages ($*) but not root on Debian: install them by hand"
  if [ -z "$apt_updated" ]; then apt-get update -qq || fail "apt-get update failed"; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || fail "apt-get install $* failed"
}

step "1/5 Python virtual environment (.venv) with ha-harness"
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || fail "no $PY: install Python 3.11 or newer"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "$PY is older than 3.11"
[ -x .venv/bin/python ] || "$PY" -m venv .venv || { apt_install python3-venv && "$PY" -m venv .venv; }
stamp=.venv/.ha-harness-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # pyfuse3 (the storage extra, in test) builds from source against libfuse3 and Python's headers
  pyinc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  if ! pkg-config --exists fuse3 2>/dev/null || ! command -v gcc >/dev/null || [ ! -f "$pyinc/Python.h" ]; then
    is_root && is_debian && { note "installing libfuse3-dev pkg-config gcc python3-dev (to build pyfuse3)"; apt_install libfuse3-dev pkg-config gcc python3-dev; }
  fi
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1
  .venv/bin/python -m pip install -q -e '.[dev]' >.venv/pip.log 2>&1 \
    || { tail -20 .venv/pip.log >&2; fail "pip install of the project failed (log: .venv/pip.log)"; }
  echo "$want" > "$stamp"
  note "installed $(.venv/bin/python -c 'import importlib.metadata as m; print("ha-harness", m.version("ha-harness"))')"
else
  note "up to date"
fi

step "2/5 Docker engine"
if docker info >/dev/null 2>&1; then
  note "an engine answers: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
else
  if ! command -v dockerd >/dev/null; then
    is_root && is_debian || fail "no Docker engine answers and this is not root on Debian: start Docker (Desktop, colima or dockerd) and run again"
    note "installing Debian's docker.io"
    apt_install docker.io
  fi
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    note "starting docker.service"; systemctl start docker || true
  fi
  if ! docker info >/dev/null 2>&1; then
    is_root || fail "dockerd is installed but not running; start it (sudo systemctl start docker)"
    note "starting dockerd (log: /var/log/ha-harness-dockerd.log)"
    nohup dockerd >/var/log/ha-harness-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || fail "dockerd did not answer within 60 s; see /var/log/ha-harness-dockerd.log"
  note "engine up: $(docker version --format '{{.Server.Version}}')"
fi

step "3/5 host tools: iptables, nsenter, mmdebstrap"
missing=()
command -v iptables >/dev/null || missing+=(iptables)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v chromium >/dev/null || missing+=(chromium)  # report.html tests: a real headless browser
command -v fusermount3 >/dev/null || missing+=(fuse3)  # harness.storage: power-loss mounts
pkg-config --exists fuse3 2>/dev/null || missing+=(libfuse3-dev pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
  if is_root && is_debian; then note "installing ${missing[*]}"; apt_install "${missing[@]}"
  else note "missing ${missing[*]}: partitions need iptables+nsenter; offline images need mmdebstrap (else a Dockerfile build)"; fi
else
  note "present"
fi

step "4/5 Toxiproxy server $TOXIPROXY_VERSION"
bin="$HARNESS_HOME/bin"
# `go install` builds report version "git", so the pinned version is kept in a stamp beside the binary.
if [ -x "$bin/toxiproxy-server" ] && [ "$(cat "$bin/.toxiproxy-version" 2>/dev/null)" = "$TOXIPROXY_VERSION" ]; then
  note "present: $bin/toxiproxy-server"
else
  command -v go >/dev/null || { note "installing Debian's golang-go"; apt_install golang-go ca-certificates; }
  tmp=$(mktemp -d)
  note "go install github.com/Shopify/toxiproxy/v2/cmd/{server,cli}@$TOXIPROXY_VERSION"
  GOBIN="$tmp" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" \
    "github.com/Shopify/toxiproxy/v2/cmd/cli@$TOXIPROXY_VERSION" 2>"$tmp.log" \
    || { tail -20 "$tmp.log" >&2; fail "go install of Toxiproxy failed"; }
  mkdir -p "$bin"
  mv "$tmp/server" "$bin/toxiproxy-server"; mv "$tmp/cli" "$bin/toxiproxy-cli"; rm -rf "$tmp"
  echo "$TOXIPROXY_VERSION" > "$bin/.toxiproxy-version"
  note "installed $bin/toxiproxy-server and toxiproxy-cli ($TOXIPROXY_VERSION)"
fi

step "5/5 node image (offline, from Debian packages)"
.venv/bin/harness images build
step "ready"
