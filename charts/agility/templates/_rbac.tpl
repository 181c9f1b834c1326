{{/*
ClusterRole rules. Least privilege, no wildcards: list each group, resource and verb.

Every product adds, together with its `controllers.<product>` values block:
  templates/_rbac_<product>.tpl defining "agility.rbac.rules.<product>", a YAML list of
  PolicyRules for its own kinds (get/list/watch/patch/update, status, finalizers only if it uses
  them) and the children it builds (StatefulSets, Services, Secrets, ...).
The ClusterRole includes that template only while the product is enabled. A product enabled in
values without its template fails the render ("no template ..."), which is the point: a
controller never runs without reviewed RBAC.
*/}}

{{/* What the manager itself needs, whatever controllers run. */}}
{{- define "agility.rbac.rules.common" -}}
# The Recorder publishes events.k8s.io/v1 Events and patches them to count repeats.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Controllers wait for their CRDs to be Established before starting their watches.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{- define "agility.rbac.clusterRules" -}}
{{ include "agility.rbac.rules.common" . }}
{{- range $name, $c := .Values.controllers }}
{{- if $c.enabled }}
{{ include (printf "agility.rbac.rules.%s" $name) $ }}
{{- end }}
{{- end }}
{{- end -}}
