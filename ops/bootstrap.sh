#!/usr/bin/env bash
# Installs what govbus needs on a fresh Debian machine, and nothing twice:
# Python 3.11+ venv at .venv with the project, Java + Maven, the Kafka jars, PostgreSQL,
# Prometheus (with promtool), kcat (a librdkafka client: the security tests use it as a department would),
# Chromium and a Chinese font (the evaluation's HTML report is drawn in headless Chromium by its test).
# Skips Kafka/PostgreSQL installs when GOVBUS_KAFKA_BOOTSTRAP / GOVBUS_DATABASE_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=""
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "govbus needs: $*; install them with: sudo apt-get install $*" >&2
    exit 1
  fi
  if [ -z "$apt_updated" ]; then apt-get update -q >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  apt_install python3 python3-venv
  PY=python3
fi
"$PY" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.govbus-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi

if [ -z "${GOVBUS_KAFKA_BOOTSTRAP:-}" ]; then
  command -v java >/dev/null && command -v mvn >/dev/null || apt_install default-jdk-headless maven
  if [ ! -f ops/kafka/libs/kafka_2.13-3.9.1.jar ]; then
    (cd ops/kafka && mvn -B -q package)
  fi
fi
if [ -z "${GOVBUS_DATABASE_URL:-}" ]; then
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || apt_install postgresql
fi
command -v kcat >/dev/null || apt_install kcat
if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then
  # without the node exporter it recommends; govbus starts its own Prometheus on its own port,
  # so the package's system service (on :9090) is stopped and kept from starting at boot
  apt_install --no-install-recommends prometheus
  if command -v systemctl >/dev/null; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
  if command -v service >/dev/null; then service prometheus stop >/dev/null 2>&1 || true; fi
fi
if [ ! -x /usr/bin/chromium ]; then
  apt_install --no-install-recommends chromium
fi
# the departments' names in the HTML report and its screenshots need a CJK font
fc-list :lang=zh 2>/dev/null | grep -q . || apt_install fonts-wqy-microhei
