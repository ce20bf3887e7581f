#!/usr/bin/env bash
# Install what the local stack and the tests need: Debian packages that are
# missing, then the project's virtual environment from requirements.txt.
#
# Debian packages: redis-server, nginx and prometheus (with promtool) run in the
# local stack. chromium and chromium-driver run the live page's browser test.
# wrk is an HTTP benchmark tool, and python3-venv creates .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(
  redis-server nginx prometheus
  chromium chromium-driver wrk
  python3-venv
)
missing=()
for package in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done

policy=/usr/sbin/policy-rc.d
policy_backup=""
restore_policy() {
  if [ -n "$policy_backup" ]; then
    mv -f "$policy_backup" "$policy"
  else
    rm -f "$policy"
  fi
}

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing Debian packages: ${missing[*]}" >&2
    echo "bootstrap: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  apt-get update -qq
  # The packages' own services are not used: the local stack starts its own
  # instances on its own ports, so a policy-rc.d that exits 101 stops the
  # post-install start. A policy-rc.d that was there before is put back after.
  if [ -e "$policy" ]; then
    policy_backup="$(mktemp /usr/sbin/policy-rc.d.bootstrap.XXXXXX)"
    cp -p "$policy" "$policy_backup"
  fi
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  restore_policy
  trap - EXIT
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -r requirements.txt
