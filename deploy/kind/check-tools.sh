#!/usr/bin/env bash
# One line per tool `make kind-up` / `make kind-smoke` need: "ok", or what is wrong and where to
# get it. Exits 1 after checking them all when any is missing or too old, so one run lists every
# problem. Usage: check-tools.sh <min kind version> [tool ...]; tools: docker buildx kind helm
# kubectl cloud-provider-kind (the last one runs as a container, so it needs only docker).
set -uo pipefail

min_kind=${1:?usage: check-tools.sh <min kind version> [tool ...]}
shift
failed=0

ok() { printf '  ok       %-20s %s\n' "$1" "$2"; }
bad() { printf '  MISSING  %-20s %s\n' "$1" "$2"; failed=1; }
# on_path TOOL URL: true when TOOL is a command; otherwise reports it missing and where to get it.
on_path() { command -v "$1" >/dev/null 2>&1 || { bad "$1" "not on PATH: $2"; return 1; }; }

# version_ge A B: A >= B for dotted numeric versions (a leading v is ignored).
version_ge() {
  local a=${1#v} b=${2#v}
  [ "$(printf '%s\n%s\n' "$b" "$a" | sort -t. -k1,1n -k2,2n -k3,3n | head -n1)" = "$b" ]
}

for tool in "$@"; do
  case "$tool" in
    docker)
      if on_path docker https://docs.docker.com/get-docker/; then
        if ! server=$(docker version --format '{{.Server.Version}}' 2>/dev/null) || [ -z "$server" ]; then
          bad docker "installed, but the engine is not reachable: start Docker"
        else
          ok docker "engine $server"
        fi
      fi ;;
    buildx)
      if version=$(docker buildx version 2>/dev/null); then
        ok buildx "${version%% *} ${version#* }"
      else
        bad buildx "docker buildx is missing (BuildKit builds): https://github.com/docker/buildx#installing"
      fi ;;
    kind)
      if on_path kind https://kind.sigs.k8s.io/docs/user/quick-start/#installation; then
        version=$(kind version 2>/dev/null | sed -n 's/^kind \(v[0-9][0-9.]*\).*/\1/p')
        if [ -z "$version" ]; then
          bad kind "cannot read 'kind version'"
        elif version_ge "$version" "$min_kind"; then
          ok kind "$version (>= $min_kind)"
        else
          bad kind "$version is older than $min_kind, which kind-config.yaml's node image needs"
        fi
      fi ;;
    helm)
      on_path helm https://helm.sh/docs/intro/install/ &&
        ok helm "$(helm version --short 2>/dev/null)" ;;
    kubectl)
      on_path kubectl https://kubernetes.io/docs/tasks/tools/ &&
        ok kubectl "$(kubectl version --client 2>/dev/null | head -n1)" ;;
    cloud-provider-kind)
      # Runs as a container from registry.k8s.io: docker is all it needs on this machine.
      if command -v docker >/dev/null 2>&1; then
        ok cloud-provider-kind "runs as a container (docker)"
      else
        bad cloud-provider-kind "needs docker to run its container"
      fi ;;
    *)
      bad "$tool" "unknown tool name in the Makefile" ;;
  esac
done
exit "$failed"
