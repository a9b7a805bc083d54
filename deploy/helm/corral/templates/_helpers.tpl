{{/*
The release's full name: the release name if it contains the chart name (release `corral` gives
`corral`, as deploy/kubernetes names things), else `<release>-corral`. Object names derive from it.
*/}}
{{- define "corral.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "corral.serviceAccountName" -}}
{{- default (include "corral.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The workers' namespace, checked: never the release namespace. */}}
{{- define "corral.workersNamespace" -}}
{{- $ns := required "workers.namespace is required" .Values.workers.namespace }}
{{- if eq $ns .Release.Namespace }}
{{- fail (printf "workers.namespace must differ from the release namespace %s: corral's Role there would open its own Secrets to corral (docs/decisions/0023-isolation-in-the-manifests.md)" .Release.Namespace) }}
{{- end }}
{{- $ns }}
{{- end }}

{{- define "corral.version" -}}
{{- default .Chart.AppVersion .Values.image.tag | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "corral.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Helm's bookkeeping labels, on every object (never in a selector or the pod template). */}}
{{- define "corral.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The labels deploy/kubernetes selects the corral worker pods by. */}}
{{- define "corral.selectorLabels" -}}
app.kubernetes.io/name: corral
app.kubernetes.io/component: worker
{{- end }}

{{/* The corral worker pods' labels, as deploy/kubernetes/deployment.yaml. */}}
{{- define "corral.podLabels" -}}
{{ include "corral.selectorLabels" . }}
app.kubernetes.io/part-of: corral
app.kubernetes.io/version: {{ include "corral.version" . | quote }}
{{- end }}

{{/* The temporal TLS files' mount path. */}}
{{- define "corral.temporalTlsDir" -}}
/etc/corral/temporal-tls
{{- end }}

{{/* The API tokens' mount path. */}}
{{- define "corral.apiTokensDir" -}}
/etc/corral/api-tokens
{{- end }}
