{{/* Names, labels and the lists of namespaces the other templates share. */}}

{{- define "kubehatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubehatch.fullname" -}}
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

{{- define "kubehatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubehatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubehatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubehatch.labels" -}}
helm.sh/chart: {{ include "kubehatch.chart" . }}
{{ include "kubehatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubehatch
{{- end -}}

{{- define "kubehatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kubehatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubehatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubehatch.peeringName" -}}
{{- default (include "kubehatch.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/* true when the operator watches every namespace (no watchNamespaces). */}}
{{- define "kubehatch.clusterWide" -}}
{{- if empty .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/* The watched namespaces, as a JSON list (use: include ... | fromJsonArray). */}}
{{- define "kubehatch.watchNamespaces" -}}
{{- .Values.watchNamespaces | default list | uniq | toJson -}}
{{- end -}}

{{/* Namespaces that get the step and trigger ServiceAccounts, as a JSON list. */}}
{{- define "kubehatch.stepNamespaces" -}}
{{- concat (list .Release.Namespace) (.Values.watchNamespaces | default list) (.Values.stepNamespaces | default list) | uniq | toJson -}}
{{- end -}}

{{/*
The operator's rights in a namespace: exactly what it reads and writes there. Used by
the ClusterRole (all namespaces) or by one Role per watched namespace.
*/}}
{{- define "kubehatch.operatorNamespacedRules" -}}
# Workflows, runs and events: watched, and annotated/updated by the operator.
- apiGroups: [kubehatch.dev]
  resources: [workflows, workflowruns, workflowevents]
  verbs: [get, list, watch, patch, update]
# Runs: created by event and schedule triggers, deleted by TTL and history limits.
- apiGroups: [kubehatch.dev]
  resources: [workflowruns]
  verbs: [create, delete]
# Events: deleted once they have been turned into runs.
- apiGroups: [kubehatch.dev]
  resources: [workflowevents]
  verbs: [delete]
- apiGroups: [kubehatch.dev]
  resources: [workflows/status, workflowruns/status, workflowevents/status]
  verbs: [get, patch, update]
# One Job per step attempt; deleted to stop a cancelled or failed run.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# Cron triggers.
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, watch, create, update, patch, delete]
# Run inputs (create) and a concurrency key step's output (get); nothing else.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create]
# A failed step's termination message.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
# Events on runs (step transitions) and kopf's own.
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{/* Where kopf records the replicas' keep-alives (see values.yaml: peering). */}}
{{- define "kubehatch.namespacedPeeringRules" -}}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end -}}
