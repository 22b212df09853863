{{/*
Chart name, shortened to the 63 characters a label value allows.
*/}}
{{- define "trading-telemetry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Resource name prefix: "<release>-<chart>", or just the release name when it already contains
the chart name. Truncated to 63 characters because Service names are DNS labels.
*/}}
{{- define "trading-telemetry.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"name-version" for the helm.sh/chart label.
*/}}
{{- define "trading-telemetry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels on every object.
*/}}
{{- define "trading-telemetry.labels" -}}
helm.sh/chart: {{ include "trading-telemetry.chart" . }}
{{ include "trading-telemetry.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trading-telemetry
{{- end }}

{{/*
Labels selectors match on. Each workload adds app.kubernetes.io/component on top.
*/}}
{{- define "trading-telemetry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trading-telemetry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
"[registry/]repository:tag[@digest]" of an image; an empty tag means the chart's appVersion.
With a digest the runtime pulls by digest; the tag stays for people reading `kubectl get`.
Call with (dict "image" .Values.x.image "root" $).
*/}}
{{- define "trading-telemetry.image" -}}
{{- $repository := .image.repository }}
{{- with .image.registry }}{{ $repository = printf "%s/%s" . $repository }}{{ end }}
{{- $ref := printf "%s:%s" $repository (default .root.Chart.AppVersion .image.tag | toString) }}
{{- with .image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end }}
{{- $ref }}
{{- end }}

{{/*
The ZMQ Service's address: one address for clients outside the release (it spreads
connections over the replicas; the chart's own publishers use zmqAddresses).
*/}}
{{- define "trading-telemetry.zmqAddress" -}}
{{- printf "tcp://%s-zmq:%d" (include "trading-telemetry.fullname" .) (int .Values.sidecar.zmqPort) }}
{{- end }}

{{/*
The sidecar's HTTP base URL through the metrics Service (the `helm test` pod reads it).
*/}}
{{- define "trading-telemetry.sidecarUrl" -}}
{{- printf "http://%s-metrics:%d" (include "trading-telemetry.fullname" .) (int .Values.sidecar.metricsPort) }}
{{- end }}

{{/*
The LatencyBenchmark of this install/upgrade: "<fullname>-bench-<revision>", a new object
(a new run) per revision, deleted with the release (templates/benchmark.yaml).
*/}}
{{- define "trading-telemetry.benchmarkName" -}}
{{- printf "%s-bench-%d" (include "trading-telemetry.fullname" .) (int .Release.Revision) }}
{{- end }}

{{/*
The sidecar StatefulSet's name, which is also its headless (governing) Service's name: pod i
is reachable as <this>-<i>.<this>.
*/}}
{{- define "trading-telemetry.sidecarName" -}}
{{- printf "%s-sidecar" (include "trading-telemetry.fullname" .) }}
{{- end }}

{{/*
Every sidecar replica's ZeroMQ address, comma-separated: the publisher opens one socket (one
stream) per replica, so each event's (src, stream, seq) is only ever seen by one replica and
the loss rule stays exact however many replicas run (docs/kubernetes.md).
*/}}
{{- define "trading-telemetry.zmqAddresses" -}}
{{- $name := include "trading-telemetry.sidecarName" . }}
{{- $out := list }}
{{- range $i := until (int .Values.sidecar.replicas) }}
{{- $out = append $out (printf "tcp://%s-%d.%s:%d" $name $i $name (int $.Values.sidecar.zmqPort)) }}
{{- end }}
{{- join "," $out }}
{{- end }}

{{/*
Every sidecar replica's HTTP base URL, comma-separated: the UI sums totals over all of them.
*/}}
{{- define "trading-telemetry.sidecarUrls" -}}
{{- $name := include "trading-telemetry.sidecarName" . }}
{{- $out := list }}
{{- range $i := until (int .Values.sidecar.replicas) }}
{{- $out = append $out (printf "http://%s-%d.%s:%d" $name $i $name (int $.Values.sidecar.metricsPort)) }}
{{- end }}
{{- join "," $out }}
{{- end }}

{{/*
The benchmark target: a Service on sidecar replica 0 only, so a benchmark's sent events and
the received/lost counts it reads back are the same replica's, whatever sidecar.replicas is.
*/}}
{{- define "trading-telemetry.benchService" -}}
{{- printf "%s-bench" (include "trading-telemetry.sidecarName" .) }}
{{- end }}

{{- define "trading-telemetry.benchSidecarUrl" -}}
{{- printf "http://%s:%d" (include "trading-telemetry.benchService" .) (int .Values.sidecar.metricsPort) }}
{{- end }}

{{/*
The ServiceAccount publisher and sidecar pods run as.
*/}}
{{- define "trading-telemetry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trading-telemetry.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Pod-level security context (values: podSecurityContext).
*/}}
{{- define "trading-telemetry.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/*
Container-level security context (values: securityContext).
*/}}
{{- define "trading-telemetry.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/*
A component's pod metadata additions and scheduling escape hatches.
Call with (dict "c" .Values.<component>) inside the pod template.
*/}}
{{- define "trading-telemetry.podScheduling" -}}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if and .component .c.topologySpread.enabled }}
# Soft: a one-node cluster (kind) still schedules every replica; on several nodes a drain
# or a node failure takes one replica, not all of them.
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: {{ .c.topologySpread.topologyKey }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "trading-telemetry.selectorLabels" .root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/*
A Prometheus duration of the form the schema admits (<integer><ms|s|m|h>) in milliseconds,
as a string: lets a template compare two durations, e.g. scrapeTimeout against interval.
*/}}
{{- define "trading-telemetry.durationMs" -}}
{{- $scale := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 -}}
{{- $unit := regexFind "[a-z]+$" . -}}
{{- if not (hasKey $scale $unit) -}}
{{- fail (printf "%q is not a duration of the form <integer><ms|s|m|h>" .) -}}
{{- end -}}
{{- mul (regexFind "^[0-9]+" . | int64) (get $scale $unit) -}}
{{- end -}}

{{/*
CURVE Secrets: required when curve.enabled, so a forgotten name fails at install time.
*/}}
{{- define "trading-telemetry.curveSecret" -}}
{{- required "curve.enabled needs curve.secretName (a Secret with server.key, server.key_secret, client.key, client.key_secret)" .Values.curve.secretName }}
{{- end }}

{{- define "trading-telemetry.curveClientsSecret" -}}
{{- required "curve.enabled needs curve.clientsSecretName (a Secret of allowed client *.key files)" .Values.curve.clientsSecretName }}
{{- end }}
