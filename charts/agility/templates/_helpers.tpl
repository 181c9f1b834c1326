{{/* Names, labels and image references shared by every template. */}}

{{- define "agility.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped base name: the release name when it already names the chart. */}}
{{- define "agility.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The operator's objects (Deployment, Lease, ServiceAccount, RBAC): `agility-operator` by default. */}}
{{- define "agility.operator.fullname" -}}
{{- printf "%s-operator" (include "agility.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agility.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "agility.operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "agility.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels are immutable on a Deployment: never add to them. */}}
{{- define "agility.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agility.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "agility.labels" -}}
{{ include "agility.selectorLabels" . }}
app.kubernetes.io/part-of: agility
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "agility.chart" . }}
{{- end -}}

{{/* An image reference from {repository, tag, digest}; the digest wins when set. */}}
{{- define "agility.imageRef" -}}
{{- $img := .image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .defaultTag $img.tag | toString) -}}
{{- end -}}
{{- end -}}

{{- define "agility.operator.image" -}}
{{- include "agility.imageRef" (dict "image" .Values.operator.image "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/* Names of the enabled controllers, sorted, comma-separated (empty when none). */}}
{{- define "agility.enabledControllers" -}}
{{- $enabled := list -}}
{{- range $name, $c := .Values.controllers -}}
{{- if $c.enabled -}}
{{- $enabled = append $enabled $name -}}
{{- end -}}
{{- end -}}
{{- join "," (sortAlpha $enabled) -}}
{{- end -}}

{{/* Environment variable name for a data-plane image: redis -> AGILITY_IMAGE_REDIS. */}}
{{- define "agility.imageEnvName" -}}
{{- printf "AGILITY_IMAGE_%s" (. | upper | replace "-" "_") -}}
{{- end -}}

{{/* The metrics Service name; the ServiceMonitor's job label and the alerts key on it. */}}
{{- define "agility.metricsServiceName" -}}
{{- printf "%s-metrics" (include "agility.operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The leader-election Lease, in the release namespace. */}}
{{- define "agility.leaseName" -}}
{{- include "agility.operator.fullname" . -}}
{{- end -}}

{{/* Pod affinity: the anti-affinity chosen by operator.podAntiAffinity, under operator.affinity. */}}
{{- define "agility.affinity" -}}
{{- $op := .Values.operator -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "agility.selectorLabels" . | fromYaml)) -}}
{{- $anti := dict -}}
{{- if eq $op.podAntiAffinity "soft" -}}
{{- $anti = dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term)) -}}
{{- else if eq $op.podAntiAffinity "hard" -}}
{{- $anti = dict "requiredDuringSchedulingIgnoredDuringExecution" (list $term) -}}
{{- end -}}
{{- $affinity := deepCopy $op.affinity -}}
{{- if and $anti (not (hasKey $affinity "podAntiAffinity")) -}}
{{- $_ := set $affinity "podAntiAffinity" $anti -}}
{{- end -}}
{{- toYaml $affinity -}}
{{- end -}}
