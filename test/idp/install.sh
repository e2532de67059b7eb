#!/usr/bin/env bash
# Installs what the real-IdP SAML tests need, only when it is missing:
#   simplesamlphp php-cli php-xml   SimpleSAMLphp 1.19 (Debian 12) served by `php -S`
#   chromium                        headless browser driven by chromedp
# Debian/Ubuntu only; must run as root (apt-get). Non-interactive. Safe to run again.
#     bash test/idp/install.sh          # prints what it installs, or nothing to do
set -euo pipefail

pkgs=()
[ -d /usr/share/simplesamlphp/www ] || pkgs+=(simplesamlphp)
command -v php >/dev/null 2>&1 || pkgs+=(php-cli)
# SimpleSAMLphp needs DOM (php-xml); the Debian simplesamlphp package does not pull it in.
if ! command -v php >/dev/null 2>&1 || ! php -m 2>/dev/null | grep -qx dom; then
  pkgs+=(php-xml)
fi
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || pkgs+=(chromium)

if [ "${#pkgs[@]}" -eq 0 ]; then
  echo "test/idp/install.sh: simplesamlphp, php (with DOM) and chromium are present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test/idp/install.sh: need root to apt-get install: ${pkgs[*]}" >&2
  exit 1
fi
echo "test/idp/install.sh: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# apache2 comes in as a dependency of simplesamlphp but is not used (php -S serves it).
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
