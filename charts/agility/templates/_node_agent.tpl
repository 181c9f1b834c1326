{{/* Names and labels of the node agent (its own DaemonSet, service account and RBAC). */}}
{{- define "agility.nodeAgent.fullname" -}}
{{- printf "%s-node-agent" (include "agility.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels are immutable on a DaemonSet: never add to them. */}}
{{- define "agility.nodeAgent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agility.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node-agent
{{- end -}}

{{- define "agility.nodeAgent.labels" -}}
{{ include "agility.nodeAgent.selectorLabels" . }}
app.kubernetes.io/part-of: agility
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "agility.chart" . }}
{{- end -}}
