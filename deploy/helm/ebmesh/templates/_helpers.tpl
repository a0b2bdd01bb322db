{{- define "ebmesh.name" -}}ebmesh{{- end -}}

{{- define "ebmesh.labels" -}}
app.kubernetes.io/name: ebmesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "ebmesh.agentSelector" -}}
app.kubernetes.io/name: ebmesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "ebmesh.image" -}}
{{- if not .Values.image.tag -}}{{- fail "image.tag is required (the agent image to run)" -}}{{- end -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{- define "ebmesh.controlPlaneSelector" -}}
app.kubernetes.io/name: ebmesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controlplane
{{- end -}}
