#!/usr/bin/env bash
# Makes sure the host has what `make run` (and make images, drill, nightly,
# test) needs besides Go and Docker: debootstrap, with which the offline
# image build bootstraps its base image, as root. It is needed only while
# an image is missing and the build is offline (no --base IMAGE).
#
# As root with apt it installs what is missing; otherwise it prints the
# exact command to run and exits 1, before anything is built.
#
#   scripts/host-deps.sh [IMAGES_FLAGS...]
#
# FIREDRILL names the firedrill binary (default bin/firedrill).
set -euo pipefail

firedrill=${FIREDRILL:-bin/firedrill}

log() { echo "host-deps: $*"; }

for flag in "$@"; do
  case $flag in
  --base | --base=*)
    # A pulled base: no bootstrap, so no host tools beyond Docker.
    exit 0
    ;;
  esac
done

# Also fails, with the endpoint, when Docker is not reachable: nothing
# else could work then either.
rc=0
missing=$("$firedrill" images --check) || rc=$?
case $rc in
0) exit 0 ;;
1) ;;
*) exit "$rc" ;;
esac
missing=${missing//$'\n'/ }

need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)

uid=$(id -u)
if ((uid != 0)); then
  # debootstrap needs root, and so does installing it.
  fix="sudo make images && make run"
  if ((${#need[@]})); then
    fix="sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]} && $fix"
  fi
  log "the images ($missing) are missing, and building them offline needs root${need:+ and ${need[*]}}. Run:"
  log "  $fix"
  log "or, where a registry is reachable: make images IMAGES_FLAGS='--base debian:bookworm-slim' && make run"
  exit 1
fi
if ((${#need[@]} == 0)); then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "the images ($missing) are missing; building them offline needs ${need[*]}, and there is no apt-get here."
  log "Install ${need[*]} with this system's package manager and run make run again, or, where a registry is"
  log "reachable: make images IMAGES_FLAGS='--base debian:bookworm-slim' && make run"
  exit 1
fi
log "the images ($missing) are missing; installing ${need[*]} for the offline build"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
