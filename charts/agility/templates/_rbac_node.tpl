{{/*
RBAC of the node controller (the cluster-side half of the node agent): it reads Nodes to know
which nodes a NodeNetworkPolicy or DiskPool selects, owns the NodeNetworkEnactments (one per
node and policy; it approves generations in their spec) and writes the policies' and pools'
status. The agents' own rights are in node-agent.yaml.
*/}}
{{- define "agility.rbac.rules.node" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["node.agility.dev"]
  resources: ["nodenetworkpolicies", "diskpools"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["node.agility.dev"]
  resources: ["nodenetworkpolicies/status", "diskpools/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["node.agility.dev"]
  resources: ["nodenetworkenactments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end -}}
