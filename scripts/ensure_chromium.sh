#!/usr/bin/env bash
# Make sure Debian's chromium is present for the real-browser test. Playwright's own browser download
# cannot reach its servers from these machines, so the test points Playwright at /usr/bin/chromium.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser test ..."
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  echo "chromium: $($CHROMIUM --version)"
else
  echo "WARNING: $CHROMIUM missing and cannot be installed (not root or no apt-get);" \
       "the browser test will fail. Install Debian's chromium package." >&2
fi
