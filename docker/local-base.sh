#!/usr/bin/env bash
# Bootstrap a Debian bookworm base image as a tarball, for hosts that cannot reach an image registry.
#   docker/local-base.sh OUT.tar
# The driver (`python -m bench.container`) imports OUT.tar with the docker SDK as tgrpo-bench-base:bookworm
# and passes it to docker/Dockerfile as BASE. This is the only place that knows about this machine:
# the host's extra CA certificates (/usr/local/share/ca-certificates/*.crt, e.g. an HTTPS proxy's) are
# added to the base's trust store and pip is pointed at that store (/etc/pip.conf), so the Dockerfile
# itself needs no secret and no machine-specific step.
# Environment: TGRPO_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   TGRPO_DEBIAN_SECURITY (default http://deb.debian.org/debian-security), TGRPO_EXTRA_CA_DIR.
set -euo pipefail

OUT=${1:?usage: $0 OUT.tar}
MIRROR=${TGRPO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${TGRPO_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
CA_DIR=${TGRPO_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}

if ! command -v mmdebstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap
  else
    echo "local-base.sh: mmdebstrap is needed (apt-get install mmdebstrap)" >&2; exit 1
  fi
fi

hooks=()
shopt -s nullglob
cas=("$CA_DIR"/*.crt)
if [ ${#cas[@]} -gt 0 ]; then
  hooks+=(--customize-hook="copy-in ${cas[*]} /usr/local/share/ca-certificates/")
  hooks+=(--customize-hook='chroot "$1" update-ca-certificates')
  hooks+=(--customize-hook='printf "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n" > "$1/etc/pip.conf"')
fi

mmdebstrap --variant=minbase --include=ca-certificates --format=tar \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --aptopt='Acquire::Retries "3"' \
  "${hooks[@]}" \
  bookworm "$OUT" \
  "deb $MIRROR bookworm main" \
  "deb $MIRROR bookworm-updates main" \
  "deb $SECURITY bookworm-security main"
echo "local-base.sh: wrote $OUT (CA files added: ${#cas[@]})"
