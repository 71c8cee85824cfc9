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

{{/* Literal namespace names of operator.namespaces, or nothing when any is a pattern
(kopf's globs, negations, lists): a namespaceSelector can name namespaces, not match them. */}}
{{- define "tokenwarden.literalNamespaces" -}}
{{- $literal := true }}
{{- range .Values.operator.namespaces }}
{{- if regexMatch "[*?\\[\\]!,]" . }}{{ $literal = false }}{{ end }}
{{- end }}
{{- if and $literal .Values.operator.namespaces }}{{ toJson .Values.operator.namespaces }}{{ end }}
{{- end }}

{{/* The webhook's CA and serving certificate (base64, keyed as in the Secret). The existing
Secret's when there is one, so `helm upgrade` changes neither the Secret, the caBundle nor the
operator's pod template; otherwise (install, or `helm template`, which cannot look) a new pair.
Made once per render and shared by the Secret, the caBundle and the pod annotation. */}}
{{- define "tokenwarden.webhookTLS" -}}
{{- if not (hasKey .Values "__tokenwardenWebhookTLS") }}
{{- $name := include "tokenwarden.fullname" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (printf "%s-webhook-tls" $name) | default dict }}
{{- $data := get $existing "data" | default dict }}
{{- $tls := dict }}
{{- if and (get $data "ca.crt") (get $data "tls.crt") (get $data "tls.key") }}
{{- $tls = dict "ca.crt" (get $data "ca.crt") "tls.crt" (get $data "tls.crt") "tls.key" (get $data "tls.key") }}
{{- else }}
{{- $host := printf "%s-webhook.%s.svc" $name .Release.Namespace }}
{{- $ca := genCA (printf "%s-webhook-ca" $name) 3650 }}
{{- $cert := genSignedCert $host nil (list $host (printf "%s-webhook.%s" $name .Release.Namespace)) 3650 $ca }}
{{- $tls = dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) }}
{{- end }}
{{- $_ := set .Values "__tokenwardenWebhookTLS" $tls }}
{{- end }}
{{- toYaml (get .Values "__tokenwardenWebhookTLS") }}
{{- end }}
