#!/usr/bin/env bash
# The interop peers that are not Debian packages, pinned and built by name from their registries:
# shadowsocks-rust from crates.io, sing-box, outline-ss-server and go-shadowsocks2 from the Go
# module proxy. Sourced by .ci/run; run it directly to build them for `deno task test`. The tests
# also look in these folders, so no PATH change is needed for them.
#
# Each peer has its own folder under PEERS_DIR, named with its version: a version change builds
# anew, an installed one is reused (a cold build of all four takes about 10 minutes on 2 cores,
# nearly all of it shadowsocks-rust; a warm run takes none).
readonly PEERS_DIR="${SSDENO_PEERS_DIR:-${HOME}/.cache/ssdeno-peers}"
readonly SS_RUST_VERSION="1.25.0"
readonly SING_BOX_VERSION="1.12.0"
readonly OUTLINE_VERSION="1.9.2"
readonly GO_SS2_VERSION="0.1.5"

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
  return "${status}"
}

# The peers' bin folders, colon-separated, for PATH.
peers_path() {
  local name dirs=()
  for name in "shadowsocks-rust-${SS_RUST_VERSION}" "sing-box-${SING_BOX_VERSION}" \
    "outline-ss-server-${OUTLINE_VERSION}" "go-shadowsocks2-${GO_SS2_VERSION}"; do
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

