{{- define "bio.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bio.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bio.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bio.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bio.labels" -}}
{{ include "bio.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* No image is published yet: refuse to render without one, saying what to do. */}}
{{- define "bio.image" -}}
{{- $repository := required "image.repository is required: no image is published yet; build the repository's Dockerfile, push it to a registry your cluster pulls from, and set --set image.repository=REGISTRY/batch-inference-operator (README, Install on GKE)" .Values.image.repository -}}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "bio.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bio.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Rules on our resources and Events: cluster-wide, or per watched namespace. */}}
{{- define "bio.namespacedRules" -}}
- apiGroups: ["batchinference.dev"]
  resources: ["batchinferencejobs"]
  verbs: ["list", "watch", "patch", "delete", "create"]  # create: a sharded resource's children
- apiGroups: ["batchinference.dev"]
  resources: ["batchinferencejobs/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]  # patch: a recurring problem's Event counts up instead of a new one
{{- if gt (int .Values.replicaCount) 1 }}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end -}}

{{/* Rules that are cluster-wide in every mode: Namespaces (their annotations give defaults), CRDs
(kopf watches them to notice its resources appear), and the cluster peering when cluster-wide. */}}
{{- define "bio.clusterRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.watchNamespaces) }}
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end -}}
