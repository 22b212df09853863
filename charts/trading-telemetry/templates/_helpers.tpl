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
"repository:tag" of an image; an empty tag means the chart's appVersion.
Call with (dict "image" .Values.x.image "root" $).
*/}}
{{- define "trading-telemetry.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag | toString) }}
{{- end }}

{{/*
Where publishers and the benchmark send events: the ZMQ Service's DNS name.
*/}}
{{- define "trading-telemetry.zmqAddress" -}}
{{- printf "tcp://%s-zmq:%d" (include "trading-telemetry.fullname" .) (int .Values.sidecar.zmqPort) }}
{{- end }}

{{/*
The sidecar's HTTP base URL through the metrics Service.
*/}}
{{- define "trading-telemetry.sidecarUrl" -}}
{{- printf "http://%s-metrics:%d" (include "trading-telemetry.fullname" .) (int .Values.sidecar.metricsPort) }}
{{- end }}

{{/*
Pod-level security context: the images run as uid/gid 10001 and nothing needs more.
*/}}
{{- define "trading-telemetry.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Container-level security context. The root filesystem is read-only: every writer (Streamlit,
matplotlib, benchmark results) is pointed at /tmp, an emptyDir.
*/}}
{{- define "trading-telemetry.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
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
