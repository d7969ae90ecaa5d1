{{/* Names and labels. */}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchboard.fullname" -}}
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

{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "switchboard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "switchboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchboard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "switchboard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Secret entries: each value name, the key it has in the Secret the chart creates,
and how the pod consumes it (an environment variable, or a file the named variable
points at). One table, so the Secret, the env and the volume cannot disagree.
*/}}
{{- define "switchboard.secretEntries" -}}
jwtHs256Secret: {key: jwt-hs256-secret, env: SWITCHBOARD_JWT_HS256_SECRET}
jwtPublicKey: {key: jwt-public-key.pem, env: SWITCHBOARD_JWT_PUBLIC_KEY_FILE, file: jwt-public-key.pem}
jwks: {key: jwks.json, env: SWITCHBOARD_JWKS_FILE, file: jwks.json}
publisherKeys: {key: publisher-keys, env: SWITCHBOARD_PUBLISHER_KEYS}
adminKeys: {key: admin-keys, env: SWITCHBOARD_ADMIN_KEYS}
modelApiKey: {key: model-api-key, env: SWITCHBOARD_MODEL_API_KEY}
toolSigningKey: {key: tool-signing-key, env: SWITCHBOARD_TOOL_SIGNING_KEY}
backplaneUrl: {key: backplane-url, env: SWITCHBOARD_BACKPLANE}
{{- end }}

{{/* The Secret the pod reads: the operator's, or the one this chart creates. */}}
{{- define "switchboard.secretName" -}}
{{- default (include "switchboard.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/*
The entries in use, as YAML `{entry: keyInSecret}`: from existingSecretKeys when an
existing Secret is named, else every non-empty value of secrets.data.
*/}}
{{- define "switchboard.secretKeysInUse" -}}
{{- $entries := include "switchboard.secretEntries" . | fromYaml }}
{{- $used := dict }}
{{- range $name, $entry := $entries }}
{{- if $.Values.secrets.existingSecret }}
{{- with index $.Values.secrets.existingSecretKeys $name }}
{{- $_ := set $used $name . }}
{{- end }}
{{- else if index $.Values.secrets.data $name }}
{{- $_ := set $used $name $entry.key }}
{{- end }}
{{- end }}
{{- toYaml $used }}
{{- end }}

{{/* Where secret files are mounted in the container. */}}
{{- define "switchboard.secretMountPath" -}}/etc/switchboard/secrets{{- end }}

{{/* Environment variables that hold secrets: a literal `value` for one is refused. */}}
{{- define "switchboard.secretEnvNames" -}}
- SWITCHBOARD_JWT_HS256_SECRET
- SWITCHBOARD_PUBLISHER_KEYS
- SWITCHBOARD_ADMIN_KEYS
- SWITCHBOARD_MODEL_API_KEY
- SWITCHBOARD_TOOL_SIGNING_KEY
- SWITCHBOARD_BACKPLANE
- BACKPLANE_PASSWORD
- SWITCHBOARD_STORE
{{- end }}

{{/* Where the SQLite store's volume is mounted (SWITCHBOARD_DATA_DIR). */}}
{{- define "switchboard.dataDir" -}}/data{{- end }}

{{/* Key of the PostgreSQL URL in the Secret the chart creates. */}}
{{- define "switchboard.storeUrlKey" -}}store-url{{- end }}

{{/*
The Secret key the pod reads the PostgreSQL URL from, as YAML `{name, key}`; empty
for SQLite. The operator's Secret when named, else the chart's (from store.postgres.url).
*/}}
{{- define "switchboard.storeUrlRef" -}}
{{- $pg := .Values.store.postgres }}
{{- if eq .Values.store.type "postgres" }}
{{- if $pg.existingSecret }}
{{- toYaml (dict "name" $pg.existingSecret "key" $pg.existingSecretKey) }}
{{- else if $pg.url }}
{{- toYaml (dict "name" (include "switchboard.fullname" .) "key" (include "switchboard.storeUrlKey" .)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whether the chart's own Secret holds the PostgreSQL URL ("true" or empty). */}}
{{- define "switchboard.storeUrlInChartSecret" -}}
{{- if and (eq .Values.store.type "postgres") .Values.store.postgres.url (not .Values.store.postgres.existingSecret) }}true{{ end }}
{{- end }}

{{/* Whether the chart creates a Secret ("true" or empty): secrets.data or store.postgres.url. */}}
{{- define "switchboard.createsSecret" -}}
{{- if not .Values.secrets.existingSecret }}
{{- if or (include "switchboard.secretKeysInUse" . | fromYaml) (include "switchboard.storeUrlInChartSecret" .) }}true{{ end }}
{{- end }}
{{- end }}

{{/* The claim that holds the SQLite data directory: the operator's or the chart's. */}}
{{- define "switchboard.dataClaimName" -}}
{{- default (printf "%s-data" (include "switchboard.fullname" .)) .Values.store.sqlite.persistence.existingClaim }}
{{- end }}

{{/* Pods the release runs at most: the HPA's ceiling, or replicaCount. */}}
{{- define "switchboard.maxReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas | int }}{{ else }}{{ .Values.replicaCount | int }}{{ end }}
{{- end }}

{{/* Termination grace: given, or preStop sleep + drain grace + a margin for the final close and exit. */}}
{{- define "switchboard.terminationGracePeriodSeconds" -}}
{{- $floor := add .Values.drain.preStopSleepSeconds .Values.drain.graceSeconds }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $floor 15 }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds | int }}
{{- end }}
{{- end }}

{{/*
Checks values.schema.json cannot express (relations between values). Each failure
says what to change, so `helm install` stops before a pod would crash-loop.
*/}}
{{- define "switchboard.validate" -}}
{{- $v := .Values }}
{{- $bp := $v.backplane }}
{{- $secretKeys := include "switchboard.secretKeysInUse" . | fromYaml }}
{{- $urlFromSecret := hasKey $secretKeys "backplaneUrl" }}
{{- $maxReplicas := include "switchboard.maxReplicas" . | int }}

{{- if eq $bp.type "memory" }}
{{- if gt $maxReplicas 1 }}
{{- fail (printf "backplane.type is memory, which keeps events inside one pod, but this release would run up to %d replicas: set backplane.type to redis or nats (with backplane.url), or replicaCount: 1 and autoscaling.enabled: false" $maxReplicas) }}
{{- end }}
{{- if or $bp.url $urlFromSecret }}
{{- fail "backplane.type is memory but a backplane URL is set: set backplane.type to redis or nats" }}
{{- end }}
{{- if $bp.password.existingSecret }}
{{- fail "backplane.password is set but backplane.type is memory, which takes no credentials" }}
{{- end }}
{{- else }}
{{- if and $bp.url $urlFromSecret }}
{{- fail "the backplane URL is set twice: in backplane.url and in the Secret (backplaneUrl); keep one" }}
{{- end }}
{{- if not (or $bp.url $urlFromSecret) }}
{{- fail (printf "backplane.type is %s: set backplane.url, or the backplaneUrl entry of the Secret" $bp.type) }}
{{- end }}
{{- if $bp.url }}
{{- $schemes := ternary (list "redis" "rediss") (list "nats" "tls") (eq $bp.type "redis") }}
{{- $scheme := regexFind "^[a-z]+" $bp.url }}
{{- if not (and (has $scheme $schemes) (hasPrefix (printf "%s://" $scheme) $bp.url)) }}
{{- fail (printf "backplane.url must start with %s:// for backplane.type %s" (join ":// or " $schemes) $bp.type) }}
{{- end }}
{{- if regexMatch "^[a-z]+://[^/]*@" $bp.url }}
{{- fail "backplane.url holds credentials, which would be written into the pod spec: put the whole URL in the Secret (secrets.data.backplaneUrl or secrets.existingSecretKeys.backplaneUrl), or keep the URL without credentials and set backplane.password.existingSecret and .key" }}
{{- end }}
{{- end }}
{{- if and $bp.password.existingSecret (not $bp.password.key) }}
{{- fail "backplane.password.existingSecret is set: set backplane.password.key too" }}
{{- end }}
{{- if and $bp.password.existingSecret (not $bp.url) }}
{{- fail "backplane.password needs backplane.url (the URL the password is added to)" }}
{{- end }}
{{- end }}

{{- $store := $v.store }}
{{- $pg := $store.postgres }}
{{- if eq $store.type "sqlite" }}
{{- if gt $maxReplicas 1 }}
{{- fail (printf "store.type is sqlite, which keeps conversations on one pod's volume, but this release would run up to %d replicas: use store.type=postgres (with store.postgres.url or store.postgres.existingSecret) for several replicas, or replicaCount: 1 and autoscaling.enabled: false" $maxReplicas) }}
{{- end }}
{{- if or $pg.url $pg.existingSecret }}
{{- fail "store.postgres is set but store.type is sqlite: set store.type to postgres, or clear store.postgres.url and store.postgres.existingSecret" }}
{{- end }}
{{- else }}
{{- if and $pg.url $pg.existingSecret }}
{{- fail "the PostgreSQL URL is set twice: in store.postgres.url and through store.postgres.existingSecret; keep one" }}
{{- end }}
{{- if not (or $pg.url $pg.existingSecret) }}
{{- fail "store.type is postgres: set store.postgres.existingSecret and .existingSecretKey (a Secret holding the URL), or store.postgres.url" }}
{{- end }}
{{- if and $pg.existingSecret (not $pg.existingSecretKey) }}
{{- fail "store.postgres.existingSecret is set: set store.postgres.existingSecretKey too (the key that holds the URL)" }}
{{- end }}
{{- if and $pg.url $v.secrets.existingSecret }}
{{- fail "store.postgres.url is set, but secrets.existingSecret is too, so the chart creates no Secret to hold it: put the URL in a Secret and name it in store.postgres.existingSecret and .existingSecretKey" }}
{{- end }}
{{- end }}
{{- if and $pg.existingSecretKey (not $pg.existingSecret) }}
{{- fail "store.postgres.existingSecretKey is set but store.postgres.existingSecret is empty: name the Secret" }}
{{- end }}

{{- if $v.secrets.existingSecret }}
{{- range $name, $value := $v.secrets.data }}
{{- if $value }}
{{- fail (printf "secrets.existingSecret is set, so the chart creates no Secret, but secrets.data.%s is set too: put it in your Secret and name its key in secrets.existingSecretKeys.%s" $name $name) }}
{{- end }}
{{- end }}
{{- if not $secretKeys }}
{{- fail "secrets.existingSecret is set but secrets.existingSecretKeys names no key: name the keys your Secret holds" }}
{{- end }}
{{- else }}
{{- range $name, $key := $v.secrets.existingSecretKeys }}
{{- if $key }}
{{- fail (printf "secrets.existingSecretKeys.%s is set but secrets.existingSecret is empty: name the Secret" $name) }}
{{- end }}
{{- end }}
{{- range $name := list "publisherKeys" "adminKeys" }}
{{- with index $v.secrets.data $name }}
{{- range $item := splitList "," . }}
{{- $secret := trim (regexReplaceAll "^[^:]*:" (trim $item) "") }}
{{- if lt (len $secret) 16 }}
{{- fail (printf "secrets.data.%s: every key must be name:secret with a secret of at least 16 characters (the gateway refuses shorter ones)" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- $jwtSources := list }}
{{- range $name := list "jwtHs256Secret" "jwtPublicKey" "jwks" }}
{{- if hasKey $secretKeys $name }}
{{- $jwtSources = append $jwtSources $name }}
{{- end }}
{{- end }}
{{- if $v.auth.jwksUrl }}
{{- $jwtSources = append $jwtSources "auth.jwksUrl" }}
{{- end }}
{{- if gt (len $jwtSources) 1 }}
{{- fail (printf "the gateway takes one JWT key source, but %d are set (%s): keep one" (len $jwtSources) (join ", " $jwtSources)) }}
{{- end }}
{{- if and (hasKey $secretKeys "jwtPublicKey") (not $v.auth.jwtAlgorithm) }}
{{- fail "a JWT public key is set: set auth.jwtAlgorithm (RS256, ES256 or EdDSA) too" }}
{{- end }}
{{- if and $v.auth.jwtAlgorithm (not (hasKey $secretKeys "jwtPublicKey")) }}
{{- fail "auth.jwtAlgorithm only applies to a public key: set the jwtPublicKey secret entry, or clear auth.jwtAlgorithm" }}
{{- end }}

{{- if $v.autoscaling.enabled }}
{{- if gt ($v.autoscaling.minReplicas | int) ($v.autoscaling.maxReplicas | int) }}
{{- fail "autoscaling.minReplicas is greater than autoscaling.maxReplicas" }}
{{- end }}
{{- end }}

{{- $floor := add $v.drain.preStopSleepSeconds $v.drain.graceSeconds 10 }}
{{- $grace := include "switchboard.terminationGracePeriodSeconds" . | int }}
{{- if lt $grace $floor }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least drain.preStopSleepSeconds + drain.graceSeconds + 10 (%d), or Kubernetes kills the pod while agent turns are still finishing; leave it null to compute it" $grace $floor) }}
{{- end }}

{{- $secretEnvNames := include "switchboard.secretEnvNames" . | fromYamlArray }}
{{- range $v.extraEnv }}
{{- if and (has .name $secretEnvNames) (hasKey . "value") }}
{{- fail (printf "extraEnv sets %s to a literal value, which would be written into the pod spec: use secrets (or valueFrom.secretKeyRef)" .name) }}
{{- end }}
{{- end }}
{{- end }}
