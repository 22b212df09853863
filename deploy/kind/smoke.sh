#!/usr/bin/env bash
# `make kind-smoke`: build and deploy everything on a kind cluster, then check it from outside
# the cluster the way a user would, and print a pass/fail table. KEEP=0 tears the cluster down
# at the end (default: keep it for a look). Every name comes from the Makefile (see the
# kind-smoke target), so this script and the chart cannot disagree on them.
set -uo pipefail

: "${MAKE:=make}" "${KUBE_CONTEXT:?}" "${NAMESPACE:?}" "${RELEASE:?}" "${FULLNAME:?}"
: "${MONITORING_NAMESPACE:?}" "${MONITORING_RELEASE:?}" "${KEEP:=1}" "${UV_RUN:=python3 -m uv run --frozen}"
PROMETHEUS_PORT=${PROMETHEUS_PORT:-19090}
GRAFANA_PORT=${GRAFANA_PORT:-13000}
ZMQ_PORT=${ZMQ_PORT:-15555}
LBENCH=smoke-burst
kubectl=(kubectl --context "$KUBE_CONTEXT")

results=()
failures=0
record() { # record <check> <pass|FAIL> <detail>
  results+=("$(printf '%-44s %-5s %s' "$1" "$2" "$3")")
  [ "$2" = pass ] || failures=$((failures + 1))
}

forwards=()
forward() { # forward <namespace> <service> <local:remote>: background port-forward, waited for
  "${kubectl[@]}" --namespace "$1" port-forward "service/$2" "$3" >/dev/null 2>&1 &
  forwards+=("$!")
  local port=${3%%:*}
  for _ in $(seq 1 30); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 1
  done
  return 1
}
cleanup() {
  for pid in "${forwards[@]}"; do kill "$pid" 2>/dev/null; done
}
trap cleanup EXIT

promql() { # promql <query>: the first sample's value, or empty
  curl -fsS --get "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" --data-urlencode "query=$1" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}

step() { # step <name> <command...>: a build/deploy step; stop at the first failure
  echo "== $1"
  if "${@:2}"; then record "$1" pass ""; else record "$1" FAIL "exit $?"; report; exit 1; fi
}

report() {
  echo
  printf '%-44s %-5s %s\n' CHECK RESULT DETAIL
  printf '%s\n' "${results[@]}"
  echo
  if [ "$failures" -eq 0 ]; then echo "kind-smoke: all checks passed"; else echo "kind-smoke: $failures check(s) failed"; fi
  if [ "$KEEP" = 0 ]; then "$MAKE" --no-print-directory kind-down; fi
}

step "make kind-up" "$MAKE" --no-print-directory kind-up
step "make images" "$MAKE" --no-print-directory images
step "make kind-load" "$MAKE" --no-print-directory kind-load
step "make deploy" "$MAKE" --no-print-directory deploy
step "helm test" helm --kube-context "$KUBE_CONTEXT" test "$RELEASE" --namespace "$NAMESPACE" --timeout 2m

# 1. Prometheus scrapes every sidecar replica.
if forward "$MONITORING_NAMESPACE" "$MONITORING_RELEASE-kube-prometheus-prometheus" "$PROMETHEUS_PORT:9090"; then
  replicas=$("${kubectl[@]}" --namespace "$NAMESPACE" get statefulset "$FULLNAME-sidecar" -o jsonpath='{.spec.replicas}')
  up=""
  for _ in $(seq 1 30); do
    up=$(promql "sum(up{namespace=\"$NAMESPACE\",service=\"$FULLNAME-metrics\"})")
    [ "${up%.*}" = "$replicas" ] && break
    sleep 2
  done
  if [ "${up%.*}" = "$replicas" ]; then record "sidecar targets up in Prometheus" pass "$up of $replicas"
  else record "sidecar targets up in Prometheus" FAIL "up=$up, replicas=$replicas"; fi
else
  record "sidecar targets up in Prometheus" FAIL "cannot port-forward Prometheus"
fi

# 2. Grafana serves the trading dashboard.
if forward "$MONITORING_NAMESPACE" "$MONITORING_RELEASE-grafana" "$GRAFANA_PORT:80"; then
  secret=$("${kubectl[@]}" --namespace "$MONITORING_NAMESPACE" get secret "$MONITORING_RELEASE-grafana" -o json)
  user=$(printf '%s' "$secret" | python3 -c 'import base64,json,sys; print(base64.b64decode(json.load(sys.stdin)["data"]["admin-user"]).decode())')
  password=$(printf '%s' "$secret" | python3 -c 'import base64,json,sys; print(base64.b64decode(json.load(sys.stdin)["data"]["admin-password"]).decode())')
  title=""
  for _ in $(seq 1 30); do
    title=$(curl -fsS -u "$user:$password" "http://127.0.0.1:$GRAFANA_PORT/api/dashboards/uid/trading-telemetry" 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["dashboard"]["title"])' 2>/dev/null) && [ -n "$title" ] && break
    sleep 2
  done
  if [ -n "$title" ]; then record "Grafana API returns the trading dashboard" pass "$title"
  else record "Grafana API returns the trading dashboard" FAIL "no dashboard uid trading-telemetry"; fi
else
  record "Grafana API returns the trading dashboard" FAIL "cannot port-forward Grafana"
fi

# 2b. Grafana through what cloud-provider-kind serves: the host-less Ingress' address on the kind
# network, which a Linux host (the CI runner) reaches directly; no port-forward, no Host header.
address=""
for _ in $(seq 1 60); do
  address=$("${kubectl[@]}" --namespace "$MONITORING_NAMESPACE" get ingress "$MONITORING_RELEASE-grafana" \
    -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null) && [ -n "$address" ] && break
  sleep 2
done
if [ -z "$address" ]; then
  record "Grafana /api/health through the Ingress" FAIL "the Ingress got no address (cloud-provider-kind?)"
else
  health=""
  for _ in $(seq 1 30); do
    health=$(curl -fsS --max-time 5 "http://$address/api/health" 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["database"])' 2>/dev/null) && [ "$health" = ok ] && break
    sleep 2
  done
  if [ "$health" = ok ]; then record "Grafana /api/health through the Ingress" pass "http://$address/api/health"
  else record "Grafana /api/health through the Ingress" FAIL "http://$address/api/health: ${health:-no answer}"; fi
fi

# 3. A trade sent through a port-forward shows in Prometheus within a few scrapes.
trades=$($UV_RUN python -c 'from telemetry_contract import metric_names as n; print(n.TRADES)')
before=$(promql "sum($trades)"); before=${before:-0}
if forward "$NAMESPACE" "$FULLNAME-sidecar-bench" "$ZMQ_PORT:5555" \
  && $UV_RUN python -c "
from trading_publisher.client import Publisher
with Publisher('tcp://127.0.0.1:$ZMQ_PORT', source='kind-smoke') as pub:
    assert pub.trade('buy', 1.0)
"; then
  after=$before
  for _ in $(seq 1 20); do
    after=$(promql "sum($trades)"); after=${after:-0}
    python3 -c "import sys; sys.exit(0 if float('$after') > float('$before') else 1)" && break
    sleep 1
  done
  if python3 -c "import sys; sys.exit(0 if float('$after') > float('$before') else 1)"; then
    record "trade via port-forward seen by Prometheus" pass "sum($trades) $before -> $after"
  else
    record "trade via port-forward seen by Prometheus" FAIL "sum($trades) stayed $before"
  fi
else
  record "trade via port-forward seen by Prometheus" FAIL "could not send the trade"
fi

# 4. A LatencyBenchmark runs through the operator and reports numbers.
"${kubectl[@]}" --namespace "$NAMESPACE" delete lbench "$LBENCH" --ignore-not-found >/dev/null
cat <<YAML | "${kubectl[@]}" --namespace "$NAMESPACE" apply -f - >/dev/null
apiVersion: telemetry.trading-telemetry.io/v1alpha1
kind: LatencyBenchmark
metadata:
  name: $LBENCH
spec:
  mode: burst
  events: 20000
  timeoutSeconds: 300
YAML
if "${kubectl[@]}" --namespace "$NAMESPACE" wait "lbench/$LBENCH" --for=jsonpath='{.status.state}'=Succeeded --timeout=420s >/dev/null; then
  p50=$("${kubectl[@]}" --namespace "$NAMESPACE" get "lbench/$LBENCH" -o jsonpath='{.status.p50Us}')
  lost=$("${kubectl[@]}" --namespace "$NAMESPACE" get "lbench/$LBENCH" -o jsonpath='{.status.lost}')
  if [ -n "$p50" ]; then record "LatencyBenchmark Succeeded with numbers" pass "p50 ${p50} us, lost ${lost:-?}"
  else record "LatencyBenchmark Succeeded with numbers" FAIL "no p50Us in status"; fi
else
  state=$("${kubectl[@]}" --namespace "$NAMESPACE" get "lbench/$LBENCH" -o jsonpath='{.status.state} {.status.reason}: {.status.message}')
  record "LatencyBenchmark Succeeded with numbers" FAIL "${state:-no status}"
fi

report
[ "$failures" -eq 0 ]
