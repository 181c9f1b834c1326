{{/* Names and labels of the KMS (its own Deployment, service account and RBAC). */}}
{{- define "agility.kms.fullname" -}}
{{- printf "%s-kms" (include "agility.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels are immutable on a Deployment: never add to them. */}}
{{- define "agility.kms.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agility.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: kms
{{- end -}}

{{- define "agility.kms.labels" -}}
{{ include "agility.kms.selectorLabels" . }}
app.kubernetes.io/part-of: agility
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "agility.chart" . }}
{{- end -}}
