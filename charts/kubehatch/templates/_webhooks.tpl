{{/* Names and lists of the webhook receiver (values.yaml: webhooks). */}}

{{- define "kubehatch.webhooks.name" -}}
{{- printf "%s-webhooks" (include "kubehatch.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubehatch.webhooks.serviceAccountName" -}}
{{- default (include "kubehatch.webhooks.name" .) .Values.webhooks.serviceAccount.name -}}
{{- end -}}

{{- define "kubehatch.webhooks.image" -}}
{{- default (include "kubehatch.image" .) .Values.webhooks.image -}}
{{- end -}}

{{/* The namespaces the sources send events to (default the release's), as a JSON list. */}}
{{- define "kubehatch.webhooks.eventNamespaces" -}}
{{- $namespaces := list -}}
{{- range .Values.webhooks.sources -}}
{{- $namespaces = append $namespaces (default $.Release.Namespace .namespace) -}}
{{- end -}}
{{- $namespaces | uniq | toJson -}}
{{- end -}}

{{/* The Secrets the sources name, as a JSON list (the receiver may get these only). */}}
{{- define "kubehatch.webhooks.secretNames" -}}
{{- $names := list -}}
{{- range .Values.webhooks.sources -}}
{{- $names = append $names .secret.name -}}
{{- end -}}
{{- $names | uniq | toJson -}}
{{- end -}}

{{/* The receiver's configuration file (kubehatch.webhooks.config), as JSON. */}}
{{- define "kubehatch.webhooks.config" -}}
{{- dict "maxBodyBytes" .Values.webhooks.maxBodyBytes "sources" (.Values.webhooks.sources | default list) | toPrettyJson -}}
{{- end -}}

{{- define "kubehatch.webhooks.selectorLabels" -}}
{{ include "kubehatch.selectorLabels" . }}
app.kubernetes.io/component: webhooks
{{- end -}}
