{{/*
RBAC of the redis controller (RedisInstance). Pods: the failover supervisor reads them, moves the
master label (patch) and fences a failed master (delete). Secrets: the connection Secret it writes
and the user's password Secret it reads.
*/}}
{{- define "agility.rbac.rules.redis" -}}
- apiGroups: ["redis.agility.dev"]
  resources: ["redisinstances"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["redis.agility.dev"]
  resources: ["redisinstances/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps", "secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Only used when the Prometheus Operator CRDs exist and an instance asks for them.
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors", "prometheusrules"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end -}}
