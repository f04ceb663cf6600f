{{/* The chart's name, overridable. */}}
{{- define "scalewise.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name, with the chart name unless it contains it. */}}
{{- define "scalewise.fullname" -}}
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

{{/* Labels of every object. */}}
{{- define "scalewise.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "scalewise.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: scalewise
{{- end }}

{{/* Labels selecting the operator's pods. */}}
{{- define "scalewise.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scalewise.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "scalewise.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "scalewise.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image: repository (required) with the digest, or the tag (default: appVersion). */}}
{{- define "scalewise.image" -}}
{{- $repository := required "image.repository is required: build and push the image (make image IMAGE=<registry>/scalewise:<tag>), then --set image.repository=<registry>/scalewise" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The metrics Service's name: also the `job` label Prometheus gives its scrapes through the ServiceMonitor. */}}
{{- define "scalewise.metricsServiceName" -}}
{{- printf "%s-metrics" (include "scalewise.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Refuses combinations the schema cannot express. */}}
{{- define "scalewise.validate" -}}
{{- if and .Values.prometheus.bearerTokenSecret.name .Values.prometheus.basicAuthSecret.name }}
{{- fail "prometheus.bearerTokenSecret and prometheus.basicAuthSecret cannot both be set: choose one way to authenticate to prometheus.url" }}
{{- end }}
{{- if and .Values.sharding.enabled (lt (int .Values.replicaCount) 2) }}
{{- fail "sharding.enabled=true needs replicaCount: 2 or more: with one replica, leader election does the same with less work" }}
{{- end }}
{{- if and (not .Values.leaderElection.enabled) (not .Values.sharding.enabled) (gt (int .Values.replicaCount) 1) }}
{{- fail "leaderElection.enabled=false needs replicaCount: 1: replicas without leader election would all scale the same Deployments" }}
{{- end }}
{{- end }}
