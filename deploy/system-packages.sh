#!/usr/bin/env bash
# Installs the Debian packages PicShare's own build needs: the image headers
# Pillow-SIMD compiles against, and chromium, the browser the browser tests
# drive through Playwright, and nginx, the reverse proxy the tests put in
# front of PicShare. Runs only what is missing, so a second call is
# instant; `make` calls it before creating the virtual environment.
set -euo pipefail
packages=(gcc python3-dev libjpeg62-turbo-dev zlib1g-dev libwebp-dev libtiff-dev
          liblcms2-dev libopenjp2-7-dev chromium redis-server wrk nginx)
packages+=("$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "PicShare needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
