{{/* Names, labels and shared pod pieces. */}}

{{- define "scwadd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "scwadd.fullname" -}}
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

{{- define "scwadd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "auth") */}}
{{- define "scwadd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scwadd.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Release-wide labels plus a component's selector labels. */}}
{{- define "scwadd.labels" -}}
helm.sh/chart: {{ include "scwadd.chart" .root }}
{{ include "scwadd.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: scwadd
{{- end -}}

{{- define "scwadd.componentName" -}}
{{- printf "%s-%s" (include "scwadd.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "scwadd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "scwadd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* A service image: (dict "root" $ "component" "auth" "digest" "") */}}
{{- define "scwadd.image" -}}
{{- $repo := printf "%s/scwadd-%s" (trimSuffix "/" .root.Values.image.registry) .component -}}
{{- if .digest -}}
{{- printf "%s@%s" $repo .digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Pod-level hardening shared by every workload: non-root, RuntimeDefault seccomp. */}}
{{- define "scwadd.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level hardening: read-only root, no capabilities, no privilege escalation. */}}
{{- define "scwadd.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Secret names: the existing one when given, else the one this chart creates. */}}
{{- define "scwadd.pgeSecretName" -}}
{{- default (printf "%s-pge" (include "scwadd.fullname" .)) .Values.secrets.pge.existingSecret -}}
{{- end -}}
{{- define "scwadd.pgeCertSecretName" -}}
{{- default (printf "%s-pge-client-cert" (include "scwadd.fullname" .)) .Values.secrets.pgeClientCertificate.existingSecret -}}
{{- end -}}
{{- define "scwadd.sealingSecretName" -}}
{{- default (printf "%s-sealing" (include "scwadd.fullname" .)) .Values.secrets.sealing.existingSecret -}}
{{- end -}}
{{- define "scwadd.htpasswdSecretName" -}}
{{- default (printf "%s-htpasswd" (include "scwadd.fullname" .)) .Values.secrets.htpasswd.existingSecret -}}
{{- end -}}
{{- define "scwadd.postgresSecretName" -}}
{{- default (printf "%s-postgresql" (include "scwadd.fullname" .)) .Values.postgresql.auth.existingSecret -}}
{{- end -}}
{{- define "scwadd.databaseSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s-database" (include "scwadd.fullname" .) -}}
{{- else -}}
{{- default (printf "%s-database" (include "scwadd.fullname" .)) .Values.externalDatabase.existingSecret -}}
{{- end -}}
{{- end -}}
{{- define "scwadd.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "scwadd.fullname" .)) .Values.ingress.tls.secretName -}}
{{- end -}}

{{/* The services this release runs, space-separated (webhooks only when enabled). */}}
{{- define "scwadd.services" -}}
auth fetcher exporter files{{ if .Values.webhooks.enabled }} webhooks{{ end }}
{{- end -}}

{{- define "scwadd.webhooksSecretName" -}}
{{- default (printf "%s-webhooks" (include "scwadd.fullname" .)) .Values.webhooks.existingSecret -}}
{{- end -}}

{{- define "scwadd.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{- printf "nats://%s:4222" (include "scwadd.componentName" (dict "root" . "component" "nats")) -}}
{{- else -}}
{{- required "nats.externalUrl is required when nats.enabled is false" .Values.nats.externalUrl -}}
{{- end -}}
{{- end -}}

{{- define "scwadd.postgresHost" -}}
{{- include "scwadd.componentName" (dict "root" . "component" "postgresql") -}}
{{- end -}}

{{/* Environment every service shares. */}}
{{- define "scwadd.commonEnv" -}}
- name: NATS_URL
  value: {{ include "scwadd.natsUrl" .root | quote }}
- name: NATS_STREAM_REPLICAS
  value: {{ ternary .root.Values.nats.replicas 1 .root.Values.nats.enabled | quote }}
- name: HTTP_HOST
  value: "0.0.0.0"
- name: HTTP_PORT
  value: {{ .port | quote }}
{{- if .metrics }}
- name: METRICS_PORT
  value: {{ .root.Values.metricsPort | quote }}
{{- end }}
- name: LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
{{- end -}}

{{/* DATABASE_URL of one service: (dict "root" $ "component" "auth") */}}
{{- define "scwadd.databaseEnv" -}}
{{- $root := .root -}}
{{- if and $root.Values.postgresql.enabled $root.Values.postgresql.auth.existingSecret }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "scwadd.postgresSecretName" $root }}
      key: password
- name: DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s:$(POSTGRES_PASSWORD)@%s:5432/%s" $root.Values.postgresql.auth.username (include "scwadd.postgresHost" $root) .component | quote }}
{{- else }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "scwadd.databaseSecretName" $root }}
      key: {{ .component }}-url
{{- end }}
{{- if $root.Values.postgresql.enabled }}
{{- /* A data volume made by an older chart lacks newer services' databases. */}}
- name: DATABASE_CREATE
  value: "true"
{{- end }}
{{- end -}}

{{/* The custodian registration: id and secret from the Secret, certificate as files. */}}
{{- define "scwadd.custodianEnv" -}}
- name: PGE_CLIENT_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "scwadd.pgeSecretName" . }}
      key: client-id
- name: PGE_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "scwadd.pgeSecretName" . }}
      key: client-secret
- name: PGE_CLIENT_CERT_FILE
  value: /etc/scwadd/pge/tls.crt
- name: PGE_CLIENT_KEY_FILE
  value: /etc/scwadd/pge/tls.key
- name: PGE_TOKEN_URL
  value: {{ .Values.custodian.tokenUrl | quote }}
{{- if .Values.custodian.caSecret }}
- name: PGE_CA_FILE
  value: /etc/scwadd/pge-ca/ca.crt
{{- end }}
{{- end -}}

{{- define "scwadd.sealingEnv" -}}
- name: TOKEN_SEALING_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "scwadd.sealingSecretName" . }}
      key: keys
{{- end -}}

{{- define "scwadd.custodianVolumeMounts" -}}
- name: pge-client-cert
  mountPath: /etc/scwadd/pge
  readOnly: true
{{- if .Values.custodian.caSecret }}
- name: pge-ca
  mountPath: /etc/scwadd/pge-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "scwadd.custodianVolumes" -}}
- name: pge-client-cert
  secret:
    secretName: {{ include "scwadd.pgeCertSecretName" . }}
    defaultMode: 0440
{{- if .Values.custodian.caSecret }}
- name: pge-ca
  secret:
    secretName: {{ .Values.custodian.caSecret }}
    defaultMode: 0444
{{- end }}
{{- end -}}

{{/* Probes on the services' health endpoints. */}}
{{- define "scwadd.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 5
  failureThreshold: 30
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 15
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{/* The whole environment of one service (and its migration init container). */}}
{{- define "scwadd.serviceEnv" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
{{- $svc := index $values .component -}}
{{- include "scwadd.commonEnv" (dict "root" $root "port" $svc.port "metrics" true) }}
{{- if has .component (list "auth" "fetcher" "exporter" "files" "webhooks") }}
{{- include "scwadd.databaseEnv" . }}
{{- end }}
{{- if has .component (list "auth" "fetcher" "exporter") }}
{{ include "scwadd.custodianEnv" $root }}
{{- end }}
{{- if has .component (list "auth" "fetcher") }}
{{ include "scwadd.sealingEnv" $root }}
{{- end }}
{{- if has .component (list "auth" "fetcher" "exporter") }}
{{- /* One budget per client ID: the fetchers' calls, the exporter's revocations and auth's
reconciler share it. */}}
{{- with $values.custodian.rateLimit }}
- name: RATE_LIMIT_PER_SECOND
  value: {{ .perSecond | quote }}
- name: RATE_LIMIT_PER_HOUR
  value: {{ .perHour | quote }}
- name: RATE_LIMIT_PER_DAY
  value: {{ .perDay | quote }}
{{- end }}
{{- end }}
{{- if eq .component "auth" }}
- name: PGE_AUTHORIZE_URL
  value: {{ $values.custodian.authorizeUrl | quote }}
- name: PGE_API_BASE
  value: {{ $values.custodian.apiBase | quote }}
- name: PUBLIC_BASE_URL
  value: {{ $values.publicBaseUrl | quote }}
- name: OAUTH_CALLBACK_PATH
  value: {{ $values.oauthCallbackPath | quote }}
- name: HISTORY_DAYS
  value: {{ $values.fetcher.historyDays | quote }}
{{- /* The landing page says how long the file is kept: files' retention, told to auth. */}}
- name: EXPORT_RETENTION_DAYS
  value: {{ $values.files.retentionDays | quote }}
- name: OPERATOR_NAME
  value: {{ $values.operator.name | quote }}
- name: OPERATOR_PURPOSE
  value: {{ $values.operator.purpose | quote }}
- name: PRIVACY_CONTACT
  value: {{ $values.operator.privacyContact | quote }}
- name: PRIVACY_POLICY_URL
  value: {{ $values.operator.privacyPolicyUrl | quote }}
{{- else if eq .component "fetcher" }}
- name: PGE_API_BASE
  value: {{ $values.custodian.apiBase | quote }}
- name: HISTORY_DAYS
  value: {{ $svc.historyDays | quote }}
{{- else if eq .component "exporter" }}
- name: CSV_LAYOUT
  value: {{ $svc.csvLayout | quote }}
{{- else if eq .component "files" }}
- name: HTPASSWD_FILE
  value: /etc/scwadd/htpasswd/htpasswd
- name: EXPORT_RETENTION_DAYS
  value: {{ $svc.retentionDays | quote }}
{{- /* uvicorn believes X-Forwarded-For from these proxies only: the client's own address. */}}
- name: FORWARDED_ALLOW_IPS
  value: {{ $svc.forwardedAllowIps | quote }}
{{- else if eq .component "webhooks" }}
- name: WEBHOOK_ENDPOINTS
  value: {{ join "," $svc.endpoints | quote }}
- name: WEBHOOK_ALLOWED_NETWORKS
  value: {{ join "," $svc.allowedNetworks | quote }}
- name: WEBHOOK_RETRY_HOURS
  value: {{ $svc.retryHours | quote }}
- name: WEBHOOK_SECRETS
  valueFrom:
    secretKeyRef:
      name: {{ include "scwadd.webhooksSecretName" $root }}
      key: secrets
{{- end }}
{{- end -}}

{{- define "scwadd.serviceVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if has .component (list "auth" "fetcher" "exporter") }}
{{ include "scwadd.custodianVolumeMounts" .root }}
{{- end }}
{{- if eq .component "files" }}
- name: htpasswd
  mountPath: /etc/scwadd/htpasswd
  readOnly: true
{{- end }}
{{- end -}}
