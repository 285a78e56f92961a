#!/usr/bin/env bash
# The system tools some tests drive, from Debian's packages, installed when missing:
#   docker-compose  validates docker-compose.yml for every profile offline (no Docker engine)
#   chromium        renders the status page in a real headless browser (Playwright drives it)
# kubectl (its built-in kustomize renders deploy/kubernetes) comes with the machine image.
# Without root or apt-get it only says what is missing: those tests skip, except with CI=true,
# where they fail.
set -euo pipefail
need=()
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "not installed: ${need[*]} (Debian packages; their tests skip)" >&2
fi
