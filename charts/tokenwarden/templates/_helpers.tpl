{{- define "tokenwarden.name" -}}tokenwarden{{- end }}

{{- define "tokenwarden.fullname" -}}
{{- if contains "tokenwarden" .Release.Name }}{{ .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}{{ printf "%s-tokenwarden" .Release.Name | trunc 50 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "tokenwarden.labels" -}}
app.kubernetes.io/name: tokenwarden
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "tokenwarden.selector" -}}
app.kubernetes.io/name: tokenwarden
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tokenwarden.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "tokenwarden.bootstrapSecret" -}}
{{- .Values.authentication.servicetoken.bootstrap.existingSecret | default (printf "%s-bootstrap" (include "tokenwarden.fullname" .)) }}
{{- end }}

{{/* The pod and container security context the image is built for (non-root, read-only root). */}}
{{- define "tokenwarden.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "tokenwarden.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end }}
