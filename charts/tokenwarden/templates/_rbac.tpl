{{/* The operator's and the authenticator's RBAC, in three parts each (rbac.yaml renders them
with tokenwarden.grants):
- cluster: what has no namespace (reviews, CRDs, namespaces, peering), in a ClusterRole;
- namespaced: what each process does in the namespaces it serves: a Role in each namespace
  operator.namespaces names, or in the ClusterRole when it serves all (or globs, see
  tokenwarden.rbacNamespaces);
- own: what it does with the release's own objects, in a Role in the release namespace.
Each helper gives rule lines (a YAML list, no indent); a grant goes in the part that matches
where the object lives. tests/integration/chart_access.py lists every grant and why it is
needed, and its tests prove the list on the API server. */}}

{{/* The namespaces whose Roles get the namespaced rules, as JSON (empty: the ClusterRole
holds them). A pattern in operator.namespaces (glob, negation) cannot become Roles when the
chart is rendered (the namespaces it matches may come later), so it fails the render unless
rbac.clusterWideForGlobs accepts cluster-wide grants. */}}
{{- define "tokenwarden.rbacNamespaces" -}}
{{- $literal := include "tokenwarden.literalNamespaces" . }}
{{- if $literal }}{{ $literal }}
{{- else if and .Values.operator.namespaces (not .Values.rbac.clusterWideForGlobs) }}
{{- fail (printf "operator.namespaces %s has a pattern, which RBAC Roles cannot follow (Roles are made when the chart is rendered, the namespaces a pattern matches may come later): name each namespace (operator.namespaces={team-a,team-b}) to get Roles in those namespaces only, or set rbac.clusterWideForGlobs=true to give the operator and the authenticator their grants in every namespace (ClusterRoles)" (toJson .Values.operator.namespaces)) }}
{{- else }}[]
{{- end }}
{{- end }}

{{- define "tokenwarden.operatorClusterRules" -}}
# kopf: notice the kinds (and their CRDs coming and going).
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if .Values.operator.webhook.enabled }}
# Admission: may the requester grant what the object grants? (a SubjectAccessReview each)
- apiGroups: [authorization.k8s.io]
  resources: [subjectaccessreviews]
  verbs: [create]
{{- end }}
{{- if .Values.operator.webhook.enabled }}
# The webhook's CA bundle, injected by the operator into the release's own
# ValidatingWebhookConfiguration (its caBundle fields only), in every certificate mode.
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingwebhookconfigurations]
  resourceNames: [{{ include "tokenwarden.fullname" . }}]
  verbs: [get, patch]
{{- end }}
{{- if .Values.operator.namespaces }}
# kopf: find the namespaces that match operator.namespaces, and notice one created later.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- if gt (int .Values.operator.replicas) 1 }}
# kopf peering between operator replicas (cluster-wide, also for some namespaces): watch the
# peers, keep this replica's record; the operator creates the release's peering object at start
# (create cannot be limited to one name).
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [list, watch, create]
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  resourceNames: [{{ include "tokenwarden.fullname" . }}]
  verbs: [patch]
{{- end }}
{{- end }}

{{- define "tokenwarden.operatorNamespacedRules" -}}
# The four kinds: read, watch; patch for kopf's annotations, the bootstrap token's spec, a leak reported at the
# leak-report endpoint (annotation tokenwarden.io/leaked, a hash), and to remove the finalizer older versions put.
- apiGroups: [tokenwarden.io]
  resources: [serviceaccounts, rolebindings, servicetokens, ingestionapikeys]
  verbs: [get, list, watch, patch]
# The bootstrap token is created; admission is probed with a dry-run create (first served namespace).
- apiGroups: [tokenwarden.io]
  resources: [servicetokens]
  verbs: [create]
# Expired tokens and keys are deleted after the retention; the bootstrap token is revoked.
- apiGroups: [tokenwarden.io]
  resources: [servicetokens, ingestionapikeys]
  verbs: [delete]
# Status only is written, never a user's spec (no drift for GitOps).
- apiGroups: [tokenwarden.io]
  resources: [serviceaccounts/status, rolebindings/status, servicetokens/status, ingestionapikeys/status]
  verbs: [patch]
# Last use: the authenticator's TokenUsage objects, copied into each credential's lastUsedAt.
- apiGroups: [tokenwarden.io]
  resources: [tokenusages]
  verbs: [list, watch]
# Token Secrets: written, read back after a crash, watched, deleted on revocation, expiry and orphaning.
# Every list and watch is narrowed by the API server: token Secrets by their managed-by label,
# import sources by tokenwarden.io/importable=true, the bootstrap and import key Secrets by name.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
# Events on tokens, accounts and the bootstrap Secret (kopf posts, never patches them).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Workload identities: the Kubernetes ServiceAccounts that accounts list, read by name, and
# followed by their metadata only (a listing, then a watch) to learn when one comes or goes.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, list, watch]
# Rollout restarts of rotation targets: a pod-template annotation, as kubectl does.
- apiGroups: [apps]
  resources: [deployments, daemonsets, statefulsets]
  verbs: [patch]
{{- end }}

{{- define "tokenwarden.operatorOwnRules" -}}
{{- $boot := .Values.authentication.servicetoken.bootstrap }}
# The import key (imported keys are hashed under it): created when missing (create cannot be
# limited to a name), then read by name; the bootstrap Secret is read whether or not the values
# have one (none: the bootstrap token, if the operator made one, is revoked).
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [{{ include "tokenwarden.importKeySecret" . }}, {{ include "tokenwarden.bootstrapSecret" . }}]
  verbs: [get]
- apiGroups: [tokenwarden.io]
  resources: [servicetokens]
  resourceNames: [{{ $boot.tokenName }}]
  verbs: [get]
{{- if and (or $boot.token $boot.existingSecret) $boot.roles }}
# The bootstrap token grants its roles in every project, and the admission webhook checks the
# operator as it checks anyone: it may grant exactly these roles, in this namespace only. (With
# existingSecret, list the Secret's roles in bootstrap.roles too; an empty resourceNames would
# allow every role, so there is no rule without them.)
- apiGroups: [tokenwarden.io]
  resources: [roles]
  resourceNames: {{ toJson $boot.roles }}
  verbs: [bind]
- apiGroups: [tokenwarden.io]
  resources: [projects]
  verbs: [use]
{{- end }}
{{- include "tokenwarden.certificateRules" . }}
{{- end }}

{{/* The certificates the operator makes at run time (handlers/_certificates.py), in the release
namespace: the CA and serving-certificate Secrets it writes (created with the create above;
read and replaced by name), the webhook's Secret every replica serves from (read and watched
by name), the authenticator's published CA bundle. */}}
{{- define "tokenwarden.certificateRules" -}}
{{- $name := include "tokenwarden.fullname" . }}
{{- $authn := .Values.authenticator }}
{{- $authnGenerated := and $authn.enabled $authn.tls.enabled (eq (include "tokenwarden.tlsMode" (dict "tls" $authn.tls "path" "authenticator.tls")) "generated") }}
{{- $written := list }}
{{- if and .Values.operator.webhook.enabled (eq (include "tokenwarden.tlsMode" (dict "tls" .Values.operator.webhook.tls "path" "operator.webhook.tls")) "generated") }}
{{- $written = concat $written (list (printf "%s-webhook-ca" $name) (printf "%s-webhook-tls" $name)) }}
{{- end }}
{{- if $authnGenerated }}
{{- $written = concat $written (list (printf "%s-authenticator-ca" $name) (printf "%s-authenticator-tls" $name)) }}
{{- end }}
{{- with $written }}
- apiGroups: [""]
  resources: [secrets]
  resourceNames: {{ toJson . }}
  verbs: [get, update]
{{- end }}
{{- if .Values.operator.webhook.enabled }}
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [{{ include "tokenwarden.webhookTLSSecret" . }}]
  verbs: [get, watch]
{{- end }}
{{- if $authnGenerated }}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [{{ $name }}-authenticator-ca]
  verbs: [get, update]
{{- end }}
{{- end }}

{{- define "tokenwarden.authenticatorClusterRules" -}}
# Workload identity: a Kubernetes service-account token sent to /verify is checked by
# kube-apiserver (a TokenReview for the configured audiences).
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
{{- end }}

{{- define "tokenwarden.authenticatorNamespacedRules" -}}
# Read the kinds (a startup listing, then watches) to keep the hash index current.
- apiGroups: [tokenwarden.io]
  resources: [serviceaccounts, servicetokens, ingestionapikeys]
  verbs: [list, watch]
# Roles come from the RoleBindings as they are now: one deleted, or being deleted, grants
# nothing from that moment, whether or not the operator runs.
- apiGroups: [tokenwarden.io]
  resources: [rolebindings]
  verbs: [list, watch]
# Last use, written in batches to one TokenUsage per namespace (created when missing), which
# authorises nothing; the operator copies it into lastUsedAt. No right to change a token.
- apiGroups: [tokenwarden.io]
  resources: [tokenusages]
  verbs: [get, create]
- apiGroups: [tokenwarden.io]
  resources: [tokenusages/status]
  verbs: [patch]
{{- end }}

{{- define "tokenwarden.authenticatorOwnRules" -}}
# The import key (imported keys are found by their HMAC under it): that one Secret, read by
# name and watched with a field selector on its name; no other Secret.
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [{{ include "tokenwarden.importKeySecret" . }}]
  verbs: [get, watch]
{{- end }}

{{/* A Role (or ClusterRole) and its binding to the component's ServiceAccount. Arguments: root,
kind (Role or ClusterRole), name, namespace (Role only), account, rules (rule lines). */}}
{{- define "tokenwarden.boundRole" -}}
{{- $binding := ternary "ClusterRoleBinding" "RoleBinding" (eq .kind "ClusterRole") }}
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ .kind }}
metadata:
  name: {{ .name }}
  {{- with .namespace }}
  namespace: {{ . }}
  {{- end }}
  labels: {{- include "tokenwarden.labels" .root | nindent 4 }}
rules:
  {{- .rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ $binding }}
metadata:
  name: {{ .name }}
  {{- with .namespace }}
  namespace: {{ . }}
  {{- end }}
  labels: {{- include "tokenwarden.labels" .root | nindent 4 }}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: {{ .kind }}, name: {{ .name }}}
subjects:
  - {kind: ServiceAccount, name: {{ .account }}, namespace: {{ .root.Release.Namespace }}}
{{- end }}

{{/* One component's grants (component: operator or authenticator): the ClusterRole, a Role in
each served namespace (or its rules in the ClusterRole), the Role of the release's own objects.
Arguments: root, component. */}}
{{- define "tokenwarden.grants" -}}
{{- $root := .root }}
{{- $name := printf "%s-%s" (include "tokenwarden.fullname" $root) .component }}
{{- $namespaces := include "tokenwarden.rbacNamespaces" $root | fromJsonArray }}
{{- $cluster := include (printf "tokenwarden.%sClusterRules" .component) $root }}
{{- $namespaced := include (printf "tokenwarden.%sNamespacedRules" .component) $root }}
{{- $common := dict "root" $root "account" $name }}
{{- $clusterRules := ternary $cluster (printf "%s\n%s" $cluster $namespaced) (gt (len $namespaces) 0) }}
{{- include "tokenwarden.boundRole" (merge (dict "kind" "ClusterRole" "name" $name "rules" $clusterRules) $common) }}
{{- range $namespaces }}
---
{{ include "tokenwarden.boundRole" (merge (dict "kind" "Role" "name" $name "namespace" . "rules" $namespaced) $common) }}
{{- end }}
---
{{ include "tokenwarden.boundRole" (merge (dict "kind" "Role" "name" (printf "%s-own" $name) "namespace" $root.Release.Namespace
  "rules" (include (printf "tokenwarden.%sOwnRules" .component) $root)) $common) }}
{{- end }}
