#!/usr/bin/env bash
# scripts/apt-install.sh WHO PACKAGE... — installs the Debian packages of the list that are
# missing (one apt-get update, then one install), saying "WHO: installing ..."; quiet and
# quick when everything is there. Needs root, or sudo, only when it installs. The setup
# scripts (setup-debian.sh, setup-arm.sh, setup-linux.sh) each name their list and call this.
set -euo pipefail
who=$1
shift
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "$who: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
