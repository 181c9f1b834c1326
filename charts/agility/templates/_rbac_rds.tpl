{{/*
RBAC of the rds controller (RdsInstance, RdsAccount, RdsDatabase). Pods: the HA supervisor reads
them, moves the role label (patch) and fences a failed primary (delete); it deletes a diverged
node's volume claim to rebuild it. Secrets: the system
Secret and the accounts' connection Secrets it writes, users' password Secrets it reads. The
finalizer on accounts and databases needs update on those kinds.
*/}}
{{- define "agility.rbac.rules.rds" -}}
- apiGroups: ["rds.agility.dev"]
  resources: ["rdsinstances"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["rds.agility.dev"]
  resources: ["rdsaccounts", "rdsdatabases"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["rds.agility.dev"]
  resources: ["rdsinstances/status", "rdsaccounts/status", "rdsdatabases/status"]
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
# Rebuilding a diverged node re-creates its volume claim empty.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end -}}
