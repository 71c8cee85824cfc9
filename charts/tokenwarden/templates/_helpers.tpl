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

{{/* The names the webhook's certificate covers: its Service's, as kube-apiserver calls it. */}}
{{- define "tokenwarden.webhookNames" -}}
{{- $service := printf "%s-webhook" (include "tokenwarden.fullname" .) }}
{{- toJson (list (printf "%s.%s.svc" $service .Release.Namespace) (printf "%s.%s" $service .Release.Namespace)) }}
{{- end }}

{{/* The Secret holding the webhook's serving certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "tokenwarden.webhookTLSSecret" -}}
{{- .Values.operator.webhook.tls.existingSecret | default (printf "%s-webhook-tls" (include "tokenwarden.fullname" .)) }}
{{- end }}

{{/* How a server gets its certificate: generated (by the operator, at run time), certManager or
existingSecret. Fails naming the values when both of the last two are set. Arguments: tls (the
server's tls values), path (their name in the values). */}}
{{- define "tokenwarden.tlsMode" -}}
{{- if .tls.certManager.enabled }}
{{- if .tls.existingSecret }}
{{- fail (printf "%s: certManager.enabled and existingSecret exclude each other: cert-manager writes the Secret itself; set one of the two" .path) }}
{{- end }}
{{- if not .tls.certManager.issuerRef.name }}
{{- fail (printf "%s.certManager.issuerRef.name: name the cert-manager Issuer or ClusterIssuer that signs the certificate (and set issuerRef.kind for a ClusterIssuer)" .path) }}
{{- end }}
{{- "certManager" }}
{{- else if .tls.existingSecret }}{{ "existingSecret" }}
{{- else }}{{ "generated" }}
{{- end }}
{{- end }}

{{/* A cert-manager Certificate. Arguments: root, name (the Certificate's and, with -tls, the
Secret's), names (DNS names and IP addresses), tls (the server's tls values). */}}
{{- define "tokenwarden.certificate" -}}
{{- $dns := list }}
{{- $ips := list }}
{{- range .names }}
{{- if regexMatch "^[0-9.]+$|:" . }}{{ $ips = append $ips . }}{{ else }}{{ $dns = append $dns . }}{{ end }}
{{- end }}
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels: {{- include "tokenwarden.labels" .root | nindent 4 }}
spec:
  secretName: {{ .name }}-tls
  commonName: {{ first $dns }}
  dnsNames: {{- toYaml $dns | nindent 4 }}
  {{- with $ips }}
  ipAddresses: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .tls.certManager.duration }}
  duration: {{ . }}
  {{- end }}
  {{- with .tls.certManager.renewBefore }}
  renewBefore: {{ . }}
  {{- end }}
  privateKey: {algorithm: ECDSA, size: 256, rotationPolicy: Always}
  usages: [digital signature, server auth]
  issuerRef: {{- toYaml .tls.certManager.issuerRef | nindent 4 }}
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
