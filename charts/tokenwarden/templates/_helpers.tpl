{{- define "tokenwarden.name" -}}{{ .Values.nameOverride | default "tokenwarden" | trunc 50 | trimSuffix "-" }}{{- end }}

{{/* The prefix of every object's name. 50 characters at most: suffixes such as
"-authenticator-tls" must still fit in a 63-character name. */}}
{{- define "tokenwarden.fullname" -}}
{{- $name := include "tokenwarden.name" . }}
{{- if .Values.fullnameOverride }}{{ .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else if contains $name .Release.Name }}{{ .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}{{ printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "tokenwarden.labels" -}}
app.kubernetes.io/name: {{ include "tokenwarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "tokenwarden.selector" -}}
app.kubernetes.io/name: {{ include "tokenwarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tokenwarden.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "tokenwarden.bootstrapSecret" -}}
{{- .Values.authentication.servicetoken.bootstrap.existingSecret | default (printf "%s-bootstrap" (include "tokenwarden.fullname" .)) }}
{{- end }}

{{/* The cluster key imported keys are hashed with: the operator creates this Secret, the authenticator reads it. */}}
{{- define "tokenwarden.importKeySecret" -}}
{{- printf "%s-import-key" (include "tokenwarden.fullname" .) }}
{{- end }}

{{/* The pod's metadata: the selector labels, the component, podLabels and podAnnotations
(which may not replace the labels the Deployment selects on), then the chart's own annotations
(`annotations`, YAML lines). Arguments: root, component, values (operator or authenticator), annotations. */}}
{{- define "tokenwarden.podMetadata" -}}
{{- $root := .root }}
{{- range $key, $_ := .values.podLabels }}
{{- if hasPrefix "app.kubernetes.io/" $key }}
{{- fail (printf "%s.podLabels: %q is one of the chart's own labels (app.kubernetes.io/*, which the Deployment selects on); choose another key" $.component $key) }}
{{- end }}
{{- end }}
{{- range $key, $_ := .values.podAnnotations }}
{{- if hasPrefix "checksum/" $key }}
{{- fail (printf "%s.podAnnotations: %q is one of the chart's own annotations (checksum/*); choose another key" $.component $key) }}
{{- end }}
{{- end }}
labels:
  {{- include "tokenwarden.selector" $root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
  {{- with .values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  {{- .annotations | nindent 2 }}
  {{- with .values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* topologySpreadConstraints, each given the component's selector when it names none.
Arguments: root, component, values. */}}
{{- define "tokenwarden.topologySpread" -}}
{{- $selector := include "tokenwarden.selector" .root | fromYaml }}
{{- $_ := set $selector "app.kubernetes.io/component" .component }}
{{- $constraints := list }}
{{- range .values.topologySpreadConstraints }}
{{- $constraint := deepCopy . }}
{{- if not (hasKey $constraint "labelSelector") }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
{{- $constraints = append $constraints $constraint }}
{{- end }}
{{- with $constraints }}
topologySpreadConstraints: {{- toYaml . | nindent 2 }}
{{- end }}
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

{{/* A CA and a serving certificate (base64, keyed as in a kubernetes.io/tls Secret) for the
Secret named `secret`. The existing Secret's when it holds a complete pair (and, with
checkNames, was made for these names), so `helm upgrade` changes neither the Secret, the CA
clients trust nor the pods; otherwise (install, or `helm template`, which cannot look) a new
pair. Made once per render and shared by every template that shows it.
Arguments: root (the chart's context), secret, ca (the CA's common name), names (DNS names and
IP addresses; the first is the common name), checkNames. */}}
{{- define "tokenwarden.servingTLS" -}}
{{- $root := .root }}
{{- $cache := printf "__tokenwardenTLS_%s" .secret }}
{{- if not (hasKey $root.Values $cache) }}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace .secret | default dict }}
{{- $data := get $existing "data" | default dict }}
{{- $annotations := get (get $existing "metadata" | default dict) "annotations" | default dict }}
{{- $sameNames := or (not .checkNames) (eq (get $annotations "tokenwarden.io/names") (join "," .names)) }}
{{- $tls := dict }}
{{- if and (get $data "ca.crt") (get $data "tls.crt") (get $data "tls.key") $sameNames }}
{{- $tls = dict "ca.crt" (get $data "ca.crt") "tls.crt" (get $data "tls.crt") "tls.key" (get $data "tls.key") }}
{{- else }}
{{- $dns := list }}
{{- $ips := list }}
{{- range .names }}
{{- if regexMatch "^[0-9.]+$|:" . }}{{ $ips = append $ips . }}{{ else }}{{ $dns = append $dns . }}{{ end }}
{{- end }}
{{- $ca := genCA .ca 3650 }}
{{- $cert := genSignedCert (first .names) $ips $dns 3650 $ca }}
{{- $tls = dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) }}
{{- end }}
{{- $_ := set $root.Values $cache $tls }}
{{- end }}
{{- toYaml (get $root.Values $cache) }}
{{- end }}

{{/* The webhook's pair, shared by the Secret, the caBundle and the operator's pod annotation. */}}
{{- define "tokenwarden.webhookTLS" -}}
{{- $name := include "tokenwarden.fullname" . }}
{{- $host := printf "%s-webhook.%s.svc" $name .Release.Namespace }}
{{- include "tokenwarden.servingTLS" (dict "root" . "secret" (printf "%s-webhook-tls" $name)
  "ca" (printf "%s-webhook-ca" $name) "names" (list $host (printf "%s-webhook.%s" $name .Release.Namespace))
  "checkNames" false) }}
{{- end }}

{{/* The names the authenticator's certificate covers: its Service's, and authenticator.tls.extraNames. */}}
{{- define "tokenwarden.authenticatorNames" -}}
{{- $service := printf "%s-authenticator" (include "tokenwarden.fullname" .) }}
{{- $ns := .Release.Namespace }}
{{- $names := list (printf "%s.%s.svc" $service $ns) $service (printf "%s.%s" $service $ns)
  (printf "%s.%s.svc.cluster.local" $service $ns) }}
{{- toJson (concat $names .Values.authenticator.tls.extraNames) }}
{{- end }}

{{/* The Secret holding the authenticator's serving certificate (tls.crt, tls.key). */}}
{{- define "tokenwarden.authenticatorTLSSecret" -}}
{{- .Values.authenticator.tls.existingSecret | default (printf "%s-authenticator-tls" (include "tokenwarden.fullname" .)) }}
{{- end }}

{{/* The chart's own pair for the authenticator (neither cert-manager nor existingSecret). */}}
{{- define "tokenwarden.authenticatorTLS" -}}
{{- $name := include "tokenwarden.fullname" . }}
{{- include "tokenwarden.servingTLS" (dict "root" . "secret" (printf "%s-authenticator-tls" $name)
  "ca" (printf "%s-authenticator-ca" $name) "names" (include "tokenwarden.authenticatorNames" . | fromJsonArray)
  "checkNames" true) }}
{{- end }}
