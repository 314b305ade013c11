{{/* Names, labels and the pieces every workload shares. */}}

{{- define "smon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "smon.fullname" -}}
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

{{/* Name of a component's objects: fullname-component, at most 63 characters. */}}
{{- define "smon.component" -}}
{{- printf "%s-%s" (include "smon.fullname" .root | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "smon.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "smon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: smart-k8s-monitor
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component; args: dict "root" $ "component" "ingest". */}}
{{- define "smon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smon.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "smon.componentLabels" -}}
{{ include "smon.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "smon.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "smon.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "smon.component" (dict "root" . "component" "secrets")) -}}
{{- end -}}

{{- define "smon.enricherServiceAccount" -}}
{{- if .Values.enricher.serviceAccount.create -}}
{{- .Values.enricher.serviceAccount.name | default (include "smon.component" (dict "root" . "component" "enricher")) -}}
{{- else -}}
{{- .Values.enricher.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "smon.advisorURL" -}}
{{- if .Values.advisor.url -}}
{{ .Values.advisor.url }}
{{- else if .Values.ollama.enabled -}}
http://{{ include "smon.component" (dict "root" . "component" "ollama") }}:11434
{{- else -}}
http://ollama:11434
{{- end -}}
{{- end -}}

{{- define "smon.ingestURL" -}}
{{- if .Values.alertmanagerConfig.url -}}
{{ .Values.alertmanagerConfig.url }}
{{- else -}}
http://{{ include "smon.component" (dict "root" . "component" "ingest") }}.{{ .Release.Namespace }}.svc:{{ .Values.ingest.service.port }}/api/v1/alerts
{{- end -}}
{{- end -}}

{{/* The config file shared by every binary (each reads its section). */}}
{{- define "smon.configFile" -}}
{{- $base := dict
  "log" (dict "level" .Values.log.level "format" .Values.log.format)
  "ingest" (dict "allow_unauthenticated" .Values.ingest.allowUnauthenticated)
  "advisor" (dict "backend" .Values.advisor.backend)
  "enricher" (dict "skip_nodes" .Values.enricher.rbac.namespaced)
  "notifier" (dict "console" .Values.notifier.console)
-}}
{{- if eq .Values.mode "allInOne" -}}
{{- $_ := set $base "data_dir" "/data" -}}
{{- $_ := set $base "embedded" (dict "listen" "127.0.0.1:4222" "sync_always" .Values.allInOne.syncAlways) -}}
{{- else -}}
{{- $_ := set $base "nats" (dict "replicas" (int .Values.nats.replicas) "max_age" .Values.nats.maxAge "max_bytes" (int64 .Values.nats.maxBytes)) -}}
{{- if .Values.nats.tls.existingSecret -}}
{{- $_ := set $base.nats "tls" (dict "ca_file" "/etc/smartmon/nats-tls/ca.crt") -}}
{{- end -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite $base (deepCopy .Values.config)) -}}
{{- end -}}

{{/* Environment every container gets: logs and NATS. */}}
{{- define "smon.env.common" -}}
- name: SMARTMON_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
- name: SMARTMON_LOG_LEVEL
  value: {{ .Values.log.level | quote }}
{{- if eq .Values.mode "distributed" }}
- name: SMARTMON_NATS_URL
  value: {{ .Values.nats.url | quote }}
{{- $auth := .Values.nats.auth }}
{{- if eq $auth.type "userPassword" }}
- name: SMARTMON_NATS_USER
  value: {{ $auth.user | quote }}
- name: SMARTMON_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ $auth.passwordKey }}
{{- else if eq $auth.type "token" }}
- name: SMARTMON_NATS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ $auth.tokenKey }}
{{- else if eq $auth.type "creds" }}
- name: SMARTMON_NATS_CREDS_FILE
  value: /etc/smartmon/nats-creds/{{ $auth.credsKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* ingest: where to listen and the token Alertmanager must send. */}}
{{- define "smon.env.ingest" -}}
- name: SMARTMON_INGEST_LISTEN
  value: "0.0.0.0:{{ .Values.ingest.port }}"
{{- if not .Values.ingest.allowUnauthenticated }}
- name: SMARTMON_INGEST_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "smon.secretName" . }}
      key: {{ .Values.secrets.keys.ingestToken }}
{{- end }}
{{- end -}}

{{/* advisor: the model server. The deadline goes to the notifier too: it posts overdue alerts. */}}
{{- define "smon.env.advisor" -}}
- name: SMARTMON_OLLAMA_URL
  value: {{ include "smon.advisorURL" . | quote }}
- name: SMARTMON_MODEL
  value: {{ .Values.advisor.model | quote }}
{{- end -}}

{{- define "smon.env.deadline" -}}
- name: SMARTMON_ADVICE_DEADLINE
  value: {{ .Values.advisor.deadline | quote }}
{{- end -}}

{{/* notifier: the sinks' URLs; a key missing from the Secret turns its sink off. */}}
{{- define "smon.env.notifier" -}}
{{- $root := . -}}
{{- range $var, $key := dict "SMARTMON_DISCORD_WEBHOOK_URL" "discordWebhookUrl" "SMARTMON_SLACK_WEBHOOK_URL" "slackWebhookUrl" "SMARTMON_TEAMS_WEBHOOK_URL" "teamsWebhookUrl" "SMARTMON_WEBHOOK_URL" "webhookUrl" }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ include "smon.secretName" $root }}
      key: {{ index $root.Values.secrets.keys $key }}
      optional: true
{{- end }}
{{- end -}}

{{/* Volumes shared by all pods; args: the root context. */}}
{{- define "smon.volumes" -}}
- name: config
  configMap:
    name: {{ include "smon.component" (dict "root" . "component" "config") }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if and (eq .Values.mode "distributed") (eq .Values.nats.auth.type "creds") }}
- name: nats-creds
  secret:
    secretName: {{ .Values.nats.auth.existingSecret }}
    items:
      - key: {{ .Values.nats.auth.credsKey }}
        path: {{ .Values.nats.auth.credsKey }}
{{- end }}
{{- if and (eq .Values.mode "distributed") .Values.nats.tls.existingSecret }}
- name: nats-tls
  secret:
    secretName: {{ .Values.nats.tls.existingSecret }}
{{- end }}
{{- end -}}

{{- define "smon.volumeMounts" -}}
- name: config
  mountPath: /etc/smartmon/config.yaml
  subPath: config.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if and (eq .Values.mode "distributed") (eq .Values.nats.auth.type "creds") }}
- name: nats-creds
  mountPath: /etc/smartmon/nats-creds
  readOnly: true
{{- end }}
{{- if and (eq .Values.mode "distributed") .Values.nats.tls.existingSecret }}
- name: nats-tls
  mountPath: /etc/smartmon/nats-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* Liveness and readiness on the ops port named "http". */}}
{{- define "smon.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end -}}

{{/* Pod-level scheduling settings shared by all workloads. */}}
{{- define "smon.podScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Fail early on values that cannot work together. */}}
{{- define "smon.validate" -}}
{{- if and (eq .Values.mode "distributed") (not .Values.nats.url) -}}
{{- fail "mode=distributed needs nats.url (e.g. nats://nats.nats.svc:4222); see docs/deploy.md" -}}
{{- end -}}
{{- if and (eq .Values.mode "distributed") (ne .Values.nats.auth.type "none") (not .Values.nats.auth.existingSecret) -}}
{{- fail (printf "nats.auth.type=%s needs nats.auth.existingSecret (the Secret holding the NATS credentials)" .Values.nats.auth.type) -}}
{{- end -}}
{{- if and .Values.alertmanagerConfig.enabled .Values.ingest.allowUnauthenticated -}}
{{- fail "alertmanagerConfig.enabled sends the ingest token: it cannot be combined with ingest.allowUnauthenticated" -}}
{{- end -}}
{{- end -}}
