{{/*
One Deployment of a smartmon binary.
args: dict
  "root"      the root context
  "component" ingest | enricher | advisor | notifier | allinone
  "values"    the component's values (replicas, resources)
  "port"      the ops (and for ingest/allinone, webhook) port
  "args"      the binary's arguments
  "env"       list of helper names rendering env entries
  "sa"        ServiceAccount name, or "" to mount no token
*/}}
{{- define "smon.deployment" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" .root "component" .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "smon.component" $ctx }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "smon.componentLabels" $ctx | nindent 4 }}
spec:
  replicas: {{ .values.replicas }}
  revisionHistoryLimit: 3
  {{- if eq .component "allinone" }}
  # One writer on the JetStream volume: never run old and new pods together.
  strategy:
    type: Recreate
  {{- end }}
  selector:
    matchLabels:
      {{- include "smon.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "smon.selectorLabels" $ctx | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "smon.configFile" $root | sha256sum }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- if .sa }}
      serviceAccountName: {{ .sa }}
      automountServiceAccountToken: true
      {{- else }}
      automountServiceAccountToken: false
      {{- end }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: 30
      {{- include "smon.podScheduling" $root | trim | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "smon.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [/usr/local/bin/{{ ternary "smartmon" .component (eq .component "allinone") }}]
          args:
            {{- toYaml .args | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
          env:
            {{- if ne .component "ingest" }}
            {{- if ne .component "allinone" }}
            - name: SMARTMON_OPS_LISTEN
              value: "0.0.0.0:{{ .port }}"
            {{- end }}
            {{- end }}
            {{- include "smon.env.common" $root | nindent 12 }}
            {{- range .env }}
            {{- include . $root | nindent 12 }}
            {{- end }}
          {{- include "smon.probes" $root | nindent 10 }}
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "smon.volumeMounts" $root | nindent 12 }}
            {{- if eq .component "allinone" }}
            - name: data
              mountPath: /data
            {{- end }}
      volumes:
        {{- include "smon.volumes" $root | nindent 8 }}
        {{- if eq .component "allinone" }}
        - name: data
          {{- if $root.Values.allInOne.persistence.enabled }}
          persistentVolumeClaim:
            claimName: {{ $root.Values.allInOne.persistence.existingClaim | default (include "smon.component" (dict "root" $root "component" "data")) }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        {{- end }}
{{- end -}}
