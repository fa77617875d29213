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
{{- if .Values.kafkaTopics.enabled }}
{{- /* the chart's KafkaTopics own the topics: the worker checks them and never creates one */}}
{{- $_ := set $env "AMILI_SYNC_TOPICS__MANAGE" "verify" }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
The Secret's env vars, for the secret settings in play. With the chart's own Secret: the values that
are set. With secrets.existingSecret: the keys the settings need (the Kafka password with a SASL
protocol, the OAuth2 client secret with config.api.token_url, else the static API token), each
required: a missing key stops the pod before it starts (CreateContainerConfigError naming the key),
never a worker without credentials.
*/}}
{{- define "amili-sync.secretEnv" -}}
{{- $s := .Values.secrets }}
{{- $sasl := hasPrefix "SASL" .Values.config.kafka.security_protocol }}
{{- $oauth := not (empty .Values.config.api.token_url) }}
{{- $items := list
      (list "AMILI_SYNC_KAFKA__PASSWORD" $s.keys.kafkaPassword $s.kafkaPassword $sasl)
      (list "AMILI_SYNC_API__TOKEN" $s.keys.apiToken $s.apiToken (not $oauth))
      (list "AMILI_SYNC_API__CLIENT_SECRET" $s.keys.apiClientSecret $s.apiClientSecret $oauth) }}
{{- range $items }}
{{- $inPlay := index . 2 }}
{{- if $s.existingSecret }}{{ $inPlay = index . 3 }}{{ end }}
{{- if $inPlay }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "amili-sync.secretName" $ }}
      key: {{ index . 1 }}
      optional: false
{{- end }}
{{- end }}
{{- end }}

{{/* The Kafka password env var of the request CronJob (the same rule as the worker's). */}}
{{- define "amili-sync.kafkaPasswordEnv" -}}
{{- $s := .Values.secrets }}
{{- if or (and $s.existingSecret (hasPrefix "SASL" .Values.config.kafka.security_protocol)) (and (not $s.existingSecret) $s.kafkaPassword) }}
- name: AMILI_SYNC_KAFKA__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "amili-sync.secretName" . }}
      key: {{ $s.keys.kafkaPassword }}
      optional: false
{{- end }}
{{- end }}

{{/* Is a Secret rendered by the chart? */}}
{{- define "amili-sync.createSecret" -}}
{{- if and (not .Values.secrets.existingSecret) (or .Values.secrets.kafkaPassword .Values.secrets.apiToken .Values.secrets.apiClientSecret) }}true{{ end }}
{{- end }}

{{/* Full topic name: prefix.suffix (or the suffix alone when the prefix is empty). */}}
{{- define "amili-sync.topicName" -}}
{{- $t := index . 0 }}{{ $suffix := index . 1 }}
{{- if $t.prefix }}{{ printf "%s.%s" $t.prefix $suffix }}{{ else }}{{ $suffix }}{{ end }}
{{- end }}

{{- define "amili-sync.requestTopic" -}}
{{- include "amili-sync.topicName" (list .Values.config.topics .Values.config.topics.fetch_requests) }}
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
{{- if and .Values.staticGroupMembership (ne .Values.workload.kind "StatefulSet") }}
{{- fail "staticGroupMembership needs workload.kind StatefulSet: a Deployment's pod names change on every rollout and eviction, and two pods may share one during a surge. Set staticGroupMembership: false or workload.kind: StatefulSet" }}
{{- end }}
{{- if and .Values.persistence.enabled (ne .Values.workload.kind "StatefulSet") }}
{{- fail "persistence.enabled needs workload.kind StatefulSet (a claim per pod through volumeClaimTemplates)" }}
{{- end }}
{{- $partitions := int .Values.config.topics.partitions }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.maxReplicaCount) $partitions) }}
{{- fail (printf "keda.maxReplicaCount (%d) is above the request topic's partitions (config.topics.partitions = %d): each worker needs a partition of its own" (int .Values.keda.maxReplicaCount) $partitions) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.maxReplicas) $partitions) }}
{{- fail (printf "autoscaling.maxReplicas (%d) is above the request topic's partitions (config.topics.partitions = %d): each worker needs a partition of its own" (int .Values.autoscaling.maxReplicas) $partitions) }}
{{- end }}
{{- if .Values.drainOnStop.enabled }}
{{- if not (int .Values.config.health_port) }}
{{- fail "drainOnStop.enabled reads /metrics: it needs config.health_port (not 0)" }}
{{- end }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (add (int .Values.drainOnStop.maxSeconds) 30) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least drainOnStop.maxSeconds + 30 (%d): the preStop wait counts against it, and the worker needs time after SIGTERM to end its open transaction" (int .Values.terminationGracePeriodSeconds) (add (int .Values.drainOnStop.maxSeconds) 30)) }}
{{- end }}
{{- end }}
{{- if and .Values.kafkaTopics.enabled (not .Values.kafkaTopics.cluster) }}
{{- fail "kafkaTopics.enabled needs kafkaTopics.cluster (the Kafka cluster's name, the strimzi.io/cluster label)" }}
{{- end }}
{{- if and .Values.kafkaTopics.enabled (gt (int .Values.kafkaTopics.minInsyncReplicas) (int .Values.kafkaTopics.replicas)) }}
{{- fail "kafkaTopics.minInsyncReplicas cannot be above kafkaTopics.replicas (no write would ever succeed)" }}
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

{{/*
Hours without a successful run of a client before AmiliSyncNoRecentSuccess fires:
prometheusRule.freshnessHours, or the period of requestCron.schedule (its coarsest restricted
field: day of week -> weekly, day of month or month -> monthly, every hour -> hourly, every N
hours (a step) -> N hours, anything else -> daily; daily without the CronJob) plus prometheusRule.freshnessSlackHours.
*/}}
{{- define "amili-sync.freshnessHours" -}}
{{- $p := .Values.prometheusRule }}
{{- if $p.freshnessHours }}{{ $p.freshnessHours | int }}{{ else }}
{{- $period := 24 }}
{{- if .Values.requestCron.enabled }}
{{- $s := .Values.requestCron.schedule | trim }}
{{- $macros := dict "@yearly" 8784 "@annually" 8784 "@monthly" 744 "@weekly" 168 "@daily" 24 "@midnight" 24 "@hourly" 1 }}
{{- if hasKey $macros $s }}
{{- $period = get $macros $s }}
{{- else }}
{{- $f := regexSplit "\\s+" $s -1 }}
{{- if ne (len $f) 5 }}{{ fail (printf "requestCron.schedule %q: five fields or a @macro expected" $s) }}{{ end }}
{{- $hour := index $f 1 }}
{{- if ne (index $f 4) "*" }}{{ $period = 168 }}
{{- else if or (ne (index $f 2) "*") (ne (index $f 3) "*") }}{{ $period = 744 }}
{{- else if eq $hour "*" }}{{ $period = 1 }}
{{- else if regexMatch "^\\*/[0-9]+$" $hour }}{{ $period = trimPrefix "*/" $hour | int }}
{{- end }}
{{- end }}
{{- end }}
{{- add $period $p.freshnessSlackHours }}
{{- end }}
{{- end }}
