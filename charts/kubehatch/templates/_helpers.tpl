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
The accounts step pods may run as, as a JSON list: the default step account, then
stepServiceAccount.allowed. Never the operator's or the trigger's account: either would
let a Workflow's author take over what that account may do (fails the render).
*/}}
{{- define "kubehatch.allowedStepServiceAccounts" -}}
{{- $allowed := concat (list .Values.stepServiceAccount.name) (.Values.stepServiceAccount.allowed | default list) | uniq -}}
{{- $operator := include "kubehatch.serviceAccountName" . -}}
{{- range $allowed -}}
{{- if eq . $operator -}}
{{- fail (printf "stepServiceAccount: %q is the operator's ServiceAccount (serviceAccount.name); step pods may never run as it. Remove it from stepServiceAccount.allowed (or stepServiceAccount.name)." .) -}}
{{- end -}}
{{- if eq . $.Values.triggerServiceAccount.name -}}
{{- fail (printf "stepServiceAccount: %q is the trigger's ServiceAccount (triggerServiceAccount.name); step pods may never run as it. Remove it from stepServiceAccount.allowed (or stepServiceAccount.name)." .) -}}
{{- end -}}
{{- if eq . $.Values.workerServiceAccount.name -}}
{{- fail (printf "stepServiceAccount: %q is the workers' ServiceAccount (workerServiceAccount.name); step pods may never run as it. Remove it from stepServiceAccount.allowed (or stepServiceAccount.name)." .) -}}
{{- end -}}
{{- end -}}
{{- $allowed | toJson -}}
{{- end -}}

{{/*
Whether to render the ValidatingAdmissionPolicies: asked for, and served by the cluster
(admissionregistration.k8s.io/v1, Kubernetes 1.30+).
*/}}
{{- define "kubehatch.admissionPolicies" -}}
{{- if and .Values.admissionPolicies.enabled (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy") -}}true{{- end -}}
{{- end -}}

{{/*
The operator's rights in a namespace: exactly the calls it makes there (kube.py and the
kopf handlers), nothing more. Used by the ClusterRole (all namespaces) or by one Role per
watched namespace.
*/}}
{{- define "kubehatch.operatorNamespacedRules" -}}
# Runs: watched; created by event and cron triggers and as child runs (ctx.spawn: step
# pods only ask, the operator creates); patched to cancel the children of a step that is
# over (spec.cancel) and to remove the label of a retry carried out (kubehatch retry);
# deleted by TTL and history limits.
- apiGroups: [kubehatch.dev]
  resources: [workflowruns]
  verbs: [get, list, watch, create, patch, delete]
# Workflows: watched, and listed when an event arrives.
- apiGroups: [kubehatch.dev]
  resources: [workflows]
  verbs: [list, watch]
# Events: watched, and deleted once their retention is over.
- apiGroups: [kubehatch.dev]
  resources: [workflowevents]
  verbs: [list, watch, delete]
# Approvals: watched (steps that wait for approval read them); never written.
- apiGroups: [kubehatch.dev]
  resources: [workflowapprovals]
  verbs: [list, watch]
# Progress and trigger state: merge patches of the status subresource only.
- apiGroups: [kubehatch.dev]
  resources: [workflows/status, workflowruns/status, workflowevents/status]
  verbs: [patch]
# Jobs, ConfigMaps and CronJobs carry owner references with blockOwnerDeletion to their
# run or Workflow; the OwnerReferencesPermissionEnforcement admission plugin asks for this.
- apiGroups: [kubehatch.dev]
  resources: [workflows/finalizers, workflowruns/finalizers]
  verbs: [update]
# One Job per step attempt, watched; read after a 409 (is the Job there the run's own?);
# deleted to stop a cancelled or failed run.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# Cron triggers: one CronJob per schedule, replaced when the Workflow changes.
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [list, watch, create, update, delete]
# Run inputs (create), a concurrency key step's output (get), and step outputs as they
# appear (list, watch: metadata only, the earliest sign that a step succeeded).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create]
# Step pods: watched (pods that never start), and a failed step's termination message.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# Events on runs (step transitions) and kopf's own (core/v1, created, never patched);
# listed for a Job's FailedCreate when its pod never appears.
- apiGroups: [""]
  resources: [events]
  verbs: [create, list]
# Worker pools: watched; their status (ready workers, queued steps) patched.
- apiGroups: [kubehatch.dev]
  resources: [workerpools]
  verbs: [list, watch]
- apiGroups: [kubehatch.dev]
  resources: [workerpools/status]
  verbs: [patch]
# One WorkerTask per attempt of a step on a pool, as a Job otherwise: watched, read after
# a 409, deleted to stop the step; its status patched to give up a lost worker's claim.
- apiGroups: [kubehatch.dev]
  resources: [workertasks]
  verbs: [get, list, watch, create, delete]
- apiGroups: [kubehatch.dev]
  resources: [workertasks/status]
  verbs: [patch]
- apiGroups: [kubehatch.dev]
  resources: [workerpools/finalizers]
  verbs: [update]
# Each pool runs as a Deployment of its name, replaced when the pool changes; read every
# few seconds for its ready workers (not watched: that would bring every Deployment).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, update]
{{- end -}}

{{/* Where kopf records the replicas' keep-alives (see values.yaml: peering). */}}
{{- define "kubehatch.namespacedPeeringRules" -}}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end -}}

{{/*
The namespaces the admission policies guard, as a JSON list: empty when the operator
watches all namespaces (the policies then guard every namespace), else every namespace
the chart serves (the release namespace, watchNamespaces, stepNamespaces).
*/}}
{{- define "kubehatch.policyNamespaces" -}}
{{- if include "kubehatch.clusterWide" . -}}
[]
{{- else -}}
{{- include "kubehatch.stepNamespaces" . -}}
{{- end -}}
{{- end -}}
