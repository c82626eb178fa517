#!/usr/bin/env bash
# Installs the Debian 12 packages hwledger builds with (as root or with sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build ccache pkg-config git \
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev libssl-dev libxxhash-dev \
  libpcre2-dev libutf8proc-dev liburing-dev libcpp-httplib-dev \
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev
# Node.js and npm for the SDK test suite (tests/sdk), unless a Node.js is already installed.
command -v node >/dev/null && command -v npm >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
