#!/usr/bin/env bash
# The interop peers that are not Debian packages, pinned and built by name from their registries:
# shadowsocks-rust from crates.io, sing-box, outline-ss-server and go-shadowsocks2 from the Go
# module proxy, the original Python shadowsocks from PyPI. Sourced by .ci/run; run it directly to
# build them for `deno task test`. The tests also look in these folders, so no PATH change is
# needed for them.
#
# Each peer has its own folder under PEERS_DIR, named with its version: a version change builds
# anew, an installed one is reused (a cold build of all four takes about 10 minutes on 2 cores,
# nearly all of it shadowsocks-rust; a warm run takes none).
readonly PEERS_DIR="${SSDENO_PEERS_DIR:-${HOME}/.cache/ssdeno-peers}"
readonly SS_RUST_VERSION="1.25.0"
readonly SING_BOX_VERSION="1.12.0"
readonly OUTLINE_VERSION="1.9.2"
readonly GO_SS2_VERSION="0.1.5"
readonly SS_PY_VERSION="2.8.2"

# cargo install of the shadowsocks-rust crate: its default features give sslocal, ssserver,
# ssurl, ssmanager, the AEAD-2017 and 2022 methods and the stream ciphers.
install_rust_peer() {
  local root="${PEERS_DIR}/shadowsocks-rust-${SS_RUST_VERSION}"
  [ -x "${root}/bin/ssserver" ] && return 0
  if ! command -v cargo >/dev/null 2>&1; then
    echo "Cannot build shadowsocks-rust: cargo is not on PATH" >&2
    return 1
  fi
  echo "Building shadowsocks-rust ${SS_RUST_VERSION} with cargo (cold: about 9 minutes)"
  local started="${SECONDS}"
  cargo install --locked --quiet --root "${root}" "shadowsocks-rust@${SS_RUST_VERSION}"
  echo "shadowsocks-rust built in $((SECONDS - started)) s"
}

# go install of a command from a pinned module version: `go install PACKAGE@vVERSION`, which builds
# with the module's own go.sum. When the proxy refuses that (here it answers the version list,
# which go install asks for to check deprecation, with 403 for some modules while it serves
# each version), the same build runs inside a throwaway module that requires that version.
install_go_peer() {
  local name="$1" module="$2" version="$3" package="$4" ldflags="${5:-}"
  local bin="${PEERS_DIR}/${name}-${version}/bin"
  [ -x "${bin}/${name}" ] && return 0
  if ! command -v go >/dev/null 2>&1; then
    echo "Cannot build ${name}: go is not on PATH" >&2
    return 1
  fi
  echo "Building ${name} ${version} with go"
  local started="${SECONDS}" work status=0
  if ! GOFLAGS=-buildvcs=false GOBIN="${bin}" go install -ldflags "${ldflags}" \
    "${package}@v${version}"; then
    echo "Retrying ${name} inside a module that requires ${module} v${version}"
    work="$(mktemp -d)"
    printf 'module peers\n\ngo 1.23\n\nrequire %s v%s\n' "${module}" "${version}" >"${work}/go.mod"
    printf '//go:build tools\n\npackage peers\n\nimport _ "%s"\n' "${package}" >"${work}/tools.go"
    (
      cd "${work}" &&
        GOFLAGS=-mod=mod go mod tidy &&
        GOFLAGS="-mod=mod -buildvcs=false" GOBIN="${bin}" go install -ldflags "${ldflags}" "${package}"
    ) || status=$?
    rm -rf "${work}"
  fi
  [ "${status}" -eq 0 ] && echo "${name} built in $((SECONDS - started)) s"
  return "${status}"
}

# pip install of the original Python shadowsocks (2.8.2, its last PyPI release) into a venv. Its
# ssserver/sslocal are reached through two wrappers, ssserver-py and sslocal-py (the plain names
# are shadowsocks-rust's), which add shims, all written here and none touching the package:
# sitecustomize.py for Python >= 3.10 (collections.MutableMapping moved to collections.abc),
# for OpenSSL >= 1.1 (EVP_CIPHER_CTX_cleanup became EVP_CIPHER_CTX_reset) and for Python 3.11's
# ctypes.util.find_library, which raises on the name "libcrypto" where gcc is installed (2.8.2
# has no --libopenssl option to skip the search); and an OpenSSL config that loads the legacy
# provider for rc4-md5 and bf-cfb. Salsa20 and ChaCha20 come from the system's libsodium (a
# dependency of shadowsocks-libev).
install_python_peer() {
  local root="${PEERS_DIR}/shadowsocks-py-${SS_PY_VERSION}"
  [ -x "${root}/bin/ssserver-py" ] && return 0
  if ! command -v python3 >/dev/null 2>&1; then
    echo "Cannot install shadowsocks ${SS_PY_VERSION}: python3 is not on PATH" >&2
    return 1
  fi
  echo "Installing shadowsocks ${SS_PY_VERSION} (Python) with pip"
  rm -rf "${root}"
  python3 -m venv "${root}/venv" &&
    "${root}/venv/bin/pip" install --quiet --disable-pip-version-check \
      "shadowsocks==${SS_PY_VERSION}" || return 1
  mkdir -p "${root}/shim" "${root}/bin"
  cat >"${root}/shim/sitecustomize.py" <<'PY'
# Shims for shadowsocks 2.8.2 (2015) on today's Python and OpenSSL; written by .ci/peers.sh.
import collections
import collections.abc
import ctypes
import ctypes.util

collections.MutableMapping = collections.abc.MutableMapping

_find_library = ctypes.util.find_library


def _find_or_none(name):
    try:
        return _find_library(name)
    except OSError:
        return None


ctypes.util.find_library = _find_or_none

_lookup = ctypes.CDLL.__getattr__


def _renamed(library, name):
    if name == "EVP_CIPHER_CTX_cleanup":
        function = getattr(library, "EVP_CIPHER_CTX_reset")
        setattr(library, name, function)
        return function
    return _lookup(library, name)


ctypes.CDLL.__getattr__ = _renamed
PY
  cat >"${root}/shim/openssl.cnf" <<'CNF'
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
default = default_sect
legacy = legacy_sect

[default_sect]
activate = 1

[legacy_sect]
activate = 1
CNF
  local role
  for role in server local; do
    cat >"${root}/bin/ss${role}-py" <<SH
#!/bin/sh
# shadowsocks ${SS_PY_VERSION} ss${role} with the shims of .ci/peers.sh.
here="\$(dirname "\$0")/.."
PYTHONPATH="\${here}/shim" OPENSSL_CONF="\${here}/shim/openssl.cnf" exec "\${here}/venv/bin/ss${role}" "\$@"
SH
    chmod +x "${root}/bin/ss${role}-py"
  done
  echo "shadowsocks ${SS_PY_VERSION} (Python) installed"
}

# Builds every peer that is not installed yet; returns non-zero if any build failed.
install_peers() {
  local status=0
  install_rust_peer || status=1
  install_go_peer sing-box github.com/sagernet/sing-box "${SING_BOX_VERSION}" \
    github.com/sagernet/sing-box/cmd/sing-box \
    "-X github.com/sagernet/sing-box/constant.Version=${SING_BOX_VERSION}" || status=1
  install_go_peer outline-ss-server github.com/Jigsaw-Code/outline-ss-server "${OUTLINE_VERSION}" \
    github.com/Jigsaw-Code/outline-ss-server/cmd/outline-ss-server \
    "-X main.version=${OUTLINE_VERSION}" || status=1
  install_go_peer go-shadowsocks2 github.com/shadowsocks/go-shadowsocks2 "${GO_SS2_VERSION}" \
    github.com/shadowsocks/go-shadowsocks2 || status=1
  install_python_peer || status=1
  return "${status}"
}

# The peers' bin folders, colon-separated, for PATH.
peers_path() {
  local name dirs=()
  for name in "shadowsocks-rust-${SS_RUST_VERSION}" "sing-box-${SING_BOX_VERSION}" \
    "outline-ss-server-${OUTLINE_VERSION}" "go-shadowsocks2-${GO_SS2_VERSION}" \
    "shadowsocks-py-${SS_PY_VERSION}"; do
    dirs+=("${PEERS_DIR}/${name}/bin")
  done
  (IFS=:; echo "${dirs[*]}")
}

# Run directly (`bash .ci/peers.sh`): build what is missing and print the PATH to use.
if [ "${BASH_SOURCE[0]}" = "${0}" ]; then
  set -euo pipefail
  install_peers
  echo "export PATH=\"$(peers_path):\${PATH}\""
fi

