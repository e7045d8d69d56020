#!/usr/bin/env bash
# Installs what building Arca needs on Debian or Ubuntu: a C/C++ toolchain and clang/libclang (RocksDB's
# bindings are generated with bindgen). Uses sudo when not run as root. Safe to run repeatedly.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v git >/dev/null 2>&1 || need_apt+=(git)
# The README's CLI session reads JSON with jq.
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
# The managed identity tests (and the README) ask the local agent with curl.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The chaos tests cut links between real processes with iptables (as root).
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need_apt+=(iptables)

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "Rust is missing: install a Rust toolchain (1.85 or newer) with rustup, open a new shell, and rerun." >&2
  exit 1
fi
