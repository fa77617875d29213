{{/* Chart name. */}}
{{- define "amili-sync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "amili-sync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "amili-sync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels (stable: never add to these, the Deployment selector is immutable). */}}
{{- define "amili-sync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "amili-sync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Standard labels of every resource. */}}
{{- define "amili-sync.labels" -}}
helm.sh/chart: {{ include "amili-sync.chart" . }}
{{ include "amili-sync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: amili-customer-sync
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "amili-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "amili-sync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "amili-sync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "amili-sync.secretName" -}}
{{- default (include "amili-sync.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/*
Settings -> environment (the ConfigMap's data): AMILI_SYNC_<GROUP>__<KEY>=value for each group
(a map under .Values.config) and AMILI_SYNC_<KEY>=value for top-level settings. Empty strings and
nulls are left out (the code's default applies); maps and lists are JSON; numbers print without an
exponent (values.yaml integers arrive as float64).
*/}}
{{- define "amili-sync.settingValue" -}}
{{- if kindIs "string" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "amili-sync.settingsEnv" -}}
{{- $env := dict }}
{{- range $key, $value := .Values.config }}
{{- if kindIs "map" $value }}
{{- range $sub, $v := $value }}
{{- if not (or (kindIs "invalid" $v) (and (kindIs "string" $v) (eq $v ""))) }}
{{- $_ := set $env (printf "AMILI_SYNC_%s__%s" (upper $key) (upper $sub)) (include "amili-sync.settingValue" $v) }}
{{- end }}
{{- end }}
{{- else if not (or (kindIs "invalid" $value) (and (kindIs "string" $value) (eq $value ""))) }}
{{- $_ := set $env (printf "AMILI_SYNC_%s" (upper $key)) (include "amili-sync.settingValue" $value) }}
{{- end }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* The Secret's env vars: name -> key, for the secret settings that are in play. */}}
{{- define "amili-sync.secretEnv" -}}
{{- $s := .Values.secrets }}
{{- $items := list
      (list "AMILI_SYNC_KAFKA__PASSWORD" $s.keys.kafkaPassword $s.kafkaPassword)
      (list "AMILI_SYNC_API__TOKEN" $s.keys.apiToken $s.apiToken)
      (list "AMILI_SYNC_API__CLIENT_SECRET" $s.keys.apiClientSecret $s.apiClientSecret) }}
{{- range $items }}
{{- if or $s.existingSecret (index . 2) }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "amili-sync.secretName" $ }}
      key: {{ index . 1 }}
      {{- if $s.existingSecret }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Is a Secret rendered by the chart? */}}
{{- define "amili-sync.createSecret" -}}
{{- if and (not .Values.secrets.existingSecret) (or .Values.secrets.kafkaPassword .Values.secrets.apiToken .Values.secrets.apiClientSecret) }}true{{ end }}
{{- end }}

{{/* Full topic name: prefix.suffix (or the suffix alone when the prefix is empty). */}}
{{- define "amili-sync.requestTopic" -}}
{{- $t := .Values.config.topics }}
{{- if $t.prefix }}{{ printf "%s.%s" $t.prefix $t.fetch_requests }}{{ else }}{{ $t.fetch_requests }}{{ end }}
{{- end }}

{{/* Checks that fail rendering with a clear message. */}}
{{- define "amili-sync.validate" -}}
{{- if and .Values.keda.enabled .Values.autoscaling.enabled }}
{{- fail "keda.enabled and autoscaling.enabled are mutually exclusive: KEDA manages its own HorizontalPodAutoscaler. Turn one of them off." }}
{{- end }}
{{- $_ := required "config.kafka.bootstrap_servers is required (the Kafka bootstrap servers, host:port[,host:port])" .Values.config.kafka.bootstrap_servers }}
{{- $_ := required "config.api.base_url is required (the Amili ARM API base URL, ending in /arm/v1)" .Values.config.api.base_url }}
{{- if and .Values.podDisruptionBudget.enabled (ne (toString .Values.podDisruptionBudget.minAvailable) "") (ne (toString .Values.podDisruptionBudget.maxUnavailable) "") }}
{{- fail "podDisruptionBudget: set either minAvailable or maxUnavailable, not both (set the other to \"\")" }}
{{- end }}
{{- if and .Values.config.kafka.group_instance_id (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled .Values.keda.enabled) }}
{{- fail "config.kafka.group_instance_id would be shared by several pods (replicaCount > 1 or autoscaling): leave it empty and set staticGroupMembership: true (each pod's name becomes its id)" }}
{{- end }}
{{- if and .Values.staticGroupMembership .Values.config.kafka.group_instance_id }}
{{- fail "staticGroupMembership and config.kafka.group_instance_id are mutually exclusive" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (eq (toString .Values.podDisruptionBudget.minAvailable) "") (eq (toString .Values.podDisruptionBudget.maxUnavailable) "") }}
{{- fail "podDisruptionBudget.enabled needs minAvailable or maxUnavailable" }}
{{- end }}
{{- if and .Values.requestCron.enabled (not .Values.requestCron.clients) }}
{{- fail "requestCron.enabled needs requestCron.clients (a list of Amili client numbers)" }}
{{- end }}
{{- if .Values.networkPolicy.enabled }}
{{- range $name := list "kafka" "amiliApi" }}
{{- $t := index $.Values.networkPolicy $name }}
{{- if not (or $t.cidrs $t.peers) }}
{{- fail (printf "networkPolicy.%s needs cidrs or peers: the NetworkPolicy allows egress only to listed destinations" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.keda.createTriggerAuthentication (not (hasPrefix "SASL" .Values.config.kafka.security_protocol)) }}
{{- fail "keda.createTriggerAuthentication needs a SASL config.kafka.security_protocol (SASL_PLAINTEXT or SASL_SSL)" }}
{{- end }}
{{- if and .Values.keda.createTriggerAuthentication .Values.keda.authenticationRef }}
{{- fail "keda.createTriggerAuthentication and keda.authenticationRef are mutually exclusive" }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by the worker, the CronJob and the test pod. */}}
{{- define "amili-sync.podCommon" -}}
serviceAccountName: {{ include "amili-sync.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ if kindIs "string" . }}{{ . }}{{ else }}{{ .name }}{{ end }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}
