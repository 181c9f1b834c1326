{{/*
RBAC of the oss controller (ObjectStore, Bucket, BucketAccess). Buckets and BucketAccesses have
finalizers (the bucket and keys live in Garage). Pods: read to reach each Garage node's admin API.
Secrets: the stores' admin and gateway-key Secrets and the connection Secrets it writes.
ServiceAccounts, Roles and RoleBindings: each store's gateway gets a Role that can only read its
own rules ConfigMap (granting it needs configmaps get/list/watch, held below).
*/}}
{{- define "agility.rbac.rules.oss" -}}
- apiGroups: ["oss.agility.dev"]
  resources: ["objectstores", "buckets", "bucketaccesses"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["oss.agility.dev"]
  resources: ["objectstores/status", "buckets/status", "bucketaccesses/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["statefulsets", "deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps", "secrets", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end -}}
