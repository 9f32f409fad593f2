{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "kmsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified name of the release's objects: the release name, prefixed to the chart name
unless it already contains it.
*/}}
{{- define "kmsync.fullname" -}}
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

{{- define "kmsync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels on every object of the chart.
*/}}
{{- define "kmsync.labels" -}}
helm.sh/chart: {{ include "kmsync.chart" . }}
{{ include "kmsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kmsync
{{- end -}}

{{/*
Labels selecting the controller pods. Never change these: a Deployment's selector is immutable.
*/}}
{{- define "kmsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kmsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kmsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kmsync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kmsync.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The watched namespaces from env.WATCH_NAMESPACE (comma-separated, blanks and duplicates
dropped), as a JSON list; "[]" means the whole cluster.
*/}}
{{- define "kmsync.watchNamespaces" -}}
{{- $out := list -}}
{{- range (splitList "," (toString (default "" .Values.env.WATCH_NAMESPACE))) -}}
{{- $ns := trim . -}}
{{- if and $ns (not (has $ns $out)) -}}
{{- $out = append $out $ns -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{- define "kmsync.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace -}}
{{- end -}}

{{- define "kmsync.leaderElectionId" -}}
{{- default (printf "%s-leader" (include "kmsync.fullname" .)) .Values.leaderElection.id | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kmsync.digestKeySecretName" -}}
{{- default (printf "%s-digest-key" (include "kmsync.fullname" .)) .Values.digestKey.secretName -}}
{{- end -}}

{{/*
RRSA: where the projected token is mounted. ACK's RRSA location (what ack-pod-identity-webhook
uses and ALIBABA_CLOUD_OIDC_TOKEN_FILE points at), and ack-secret-manager's location (the
default oidcTokenFilePath of SecretStores).
*/}}
{{- define "kmsync.rrsaTokenDir" -}}/var/run/secrets/ack.alibabacloud.com/rrsa-tokens{{- end -}}
{{- define "kmsync.ackTokenDir" -}}/var/run/secrets/tokens{{- end -}}

{{- define "kmsync.oidcProviderArn" -}}
{{- if .Values.rrsa.oidcProviderArn -}}
{{- .Values.rrsa.oidcProviderArn -}}
{{- else if and .Values.command.aliuid .Values.command.clusterId -}}
{{- printf "acs:ram::%v:oidc-provider/ack-rrsa-%v" .Values.command.aliuid .Values.command.clusterId -}}
{{- end -}}
{{- end -}}

{{/*
ack-secret-manager's envVarsFromSecret names and the standard Alibaba Cloud credential
variables they stand for. Standard names map to themselves.
*/}}
{{- define "kmsync.credentialEnvNames" -}}
{{- toJson (dict
  "ACCESS_KEY_ID" "ALIBABA_CLOUD_ACCESS_KEY_ID"
  "SECRET_ACCESS_KEY" "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
  "ALICLOUD_ROLE_ARN" "ALIBABA_CLOUD_ROLE_ARN"
  "ALICLOUD_ROLE_SESSION_NAME" "ALIBABA_CLOUD_ROLE_SESSION_NAME"
  "ALICLOUD_OIDC_PROVIDER_ARN" "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"
  "ALICLOUD_OIDC_TOKEN_FILE" "ALIBABA_CLOUD_OIDC_TOKEN_FILE"
  "ALIBABA_CLOUD_ACCESS_KEY_ID" "ALIBABA_CLOUD_ACCESS_KEY_ID"
  "ALIBABA_CLOUD_ACCESS_KEY_SECRET" "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
  "ALIBABA_CLOUD_SECURITY_TOKEN" "ALIBABA_CLOUD_SECURITY_TOKEN"
  "ALIBABA_CLOUD_ROLE_ARN" "ALIBABA_CLOUD_ROLE_ARN"
  "ALIBABA_CLOUD_ROLE_SESSION_NAME" "ALIBABA_CLOUD_ROLE_SESSION_NAME"
  "ALIBABA_CLOUD_OIDC_PROVIDER_ARN" "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"
  "ALIBABA_CLOUD_OIDC_TOKEN_FILE" "ALIBABA_CLOUD_OIDC_TOKEN_FILE"
) -}}
{{- end -}}

{{/*
The container's environment as a JSON list of EnvVar objects: downward API, RRSA, credentials
from Secrets, then extraEnv. Fails on a variable set twice.
*/}}
{{- define "kmsync.env" -}}
{{- $env := list
  (dict "name" "POD_NAMESPACE" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.namespace")))
  (dict "name" "POD_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.name")))
-}}
{{- if .Values.rrsa.enable -}}
{{- $env = append $env (dict "name" "ALIBABA_CLOUD_OIDC_TOKEN_FILE" "value" (printf "%s/token" (include "kmsync.rrsaTokenDir" .))) -}}
{{- with .Values.rrsa.roleArn -}}
{{- $env = append $env (dict "name" "ALIBABA_CLOUD_ROLE_ARN" "value" .) -}}
{{- end -}}
{{- with (include "kmsync.oidcProviderArn" .) -}}
{{- $env = append $env (dict "name" "ALIBABA_CLOUD_OIDC_PROVIDER_ARN" "value" .) -}}
{{- end -}}
{{- end -}}
{{- $names := fromJson (include "kmsync.credentialEnvNames" .) -}}
{{- range $key := keys .Values.envVarsFromSecret | sortAlpha -}}
{{- $ref := get $.Values.envVarsFromSecret $key -}}
{{- $env = append $env (dict "name" (get $names $key) "valueFrom" (dict "secretKeyRef" (dict "name" $ref.secretKeyRef "key" $ref.key))) -}}
{{- end -}}
{{- range .Values.extraEnv -}}
{{- $env = append $env . -}}
{{- end -}}
{{- $seen := list -}}
{{- range $env -}}
{{- if has .name $seen -}}
{{- fail (printf "environment variable %s is set twice (check rrsa.*, envVarsFromSecret and extraEnv: ack-secret-manager names map to ALIBABA_CLOUD_* names)" .name) -}}
{{- end -}}
{{- $seen = append $seen .name -}}
{{- end -}}
{{- toJson $env -}}
{{- end -}}

{{/*
The controller's command-line flags, one per list item, as a JSON list. docs/operations.md is
the reference for each flag; tests/chart checks every flag rendered here is documented there.
*/}}
{{- define "kmsync.args" -}}
{{- $c := .Values.command -}}
{{- $args := list "controller" (printf "--backend=%s" $c.backend) -}}
{{- with $c.region -}}{{- $args = append $args (printf "--region=%s" .) -}}{{- end -}}
{{- with $c.kmsEndpoint -}}{{- $args = append $args (printf "--kms-endpoint=%s" .) -}}{{- end -}}
{{- $args = append $args (printf "--polling-interval=%s" $c.pollingInterval) -}}
{{- $args = append $args (printf "--disable-polling=%t" $c.disablePolling) -}}
{{- $args = append $args (printf "--reconcile-period=%s" $c.reconcilePeriod) -}}
{{- $args = append $args (printf "--reconcile-count=%d" (int64 $c.reconcileCount)) -}}
{{- $args = append $args (printf "--max-concurrent-kms-secret-pulls=%d" (int64 $c.maxConcurrentKmsSecretPulls)) -}}
{{- $args = append $args (printf "--max-concurrent-oos-secret-pulls=%d" (int64 $c.maxConcurrentOosSecretPulls)) -}}
{{- $watch := fromJsonArray (include "kmsync.watchNamespaces" .) -}}
{{- if $watch -}}{{- $args = append $args (printf "--watch-namespaces=%s" (join "," $watch)) -}}{{- end -}}
{{- with $c.excludeNamespaces -}}{{- $args = append $args (printf "--exclude-namespaces=%s" (join "," .)) -}}{{- end -}}
{{- $args = append $args (printf "--enable-cross-namespace-secret-store=%t" $c.enableCrossNamespaceSecretStore) -}}
{{- $args = append $args (printf "--enable-cross-namespace-auth-ref=%t" $c.enableCrossNamespaceAuthRef) -}}
{{- $args = append $args (printf "--enable-worker-role=%t" $c.enableWorkerRole) -}}
{{- $args = append $args (printf "--enable-service-account-token=%t" $c.enableServiceAccountToken) -}}
{{- with $c.allowedEndpoints -}}{{- $args = append $args (printf "--allowed-endpoints=%s" (join "," .)) -}}{{- end -}}
{{- with $c.allowedOidcTokenPaths -}}{{- $args = append $args (printf "--allowed-oidc-token-paths=%s" (join "," .)) -}}{{- end -}}
{{- $args = append $args (printf "--kms-qps=%d" (int64 $c.kmsQps)) -}}
{{- $args = append $args (printf "--leader-elect=%t" .Values.leaderElection.enabled) -}}
{{- if .Values.leaderElection.enabled -}}
{{- $args = append $args (printf "--leader-election-namespace=%s" (include "kmsync.leaderElectionNamespace" .)) -}}
{{- $args = append $args (printf "--leader-election-id=%s" (include "kmsync.leaderElectionId" .)) -}}
{{- end -}}
{{- $args = append $args (printf "--metrics-bind-address=0.0.0.0:%d" (int64 .Values.metrics.port)) -}}
{{- $args = append $args (printf "--health-probe-bind-address=0.0.0.0:%d" (int64 .Values.health.port)) -}}
{{- $args = append $args (printf "--log-format=%s" .Values.logFormat) -}}
{{- $args = append $args (printf "--log-level=%s" .Values.logLevel) -}}
{{- $args = append $args (printf "--rule-timeout=%s" .Values.rules.timeout) -}}
{{- $args = append $args (printf "--rule-memory-limit=%s" .Values.rules.memoryLimit) -}}
{{- $args = append $args (printf "--rule-max-concurrency=%d" (int64 .Values.rules.maxConcurrency)) -}}
{{- $args = append $args (printf "--rule-logs=%t" .Values.rules.logs) -}}
{{- $args = append $args (printf "--digest-key-secret=%s" (include "kmsync.digestKeySecretName" .)) -}}
{{- toJson $args -}}
{{- end -}}

{{/*
RBAC rules on namespaced resources, shared by the cluster-wide ClusterRole and the per-namespace Roles
(templates/rbac.yaml). docs/operations.md gives the reason for each.
*/}}
{{- define "kmsync.namespacedRules" -}}
{{- $watch := fromJsonArray (include "kmsync.watchNamespaces" .) -}}
# Target Secrets: cache the managed ones (label selector), read store credentials (get),
# create/apply (server-side apply creates through patch and is also authorised as create),
# delete for deletionPolicy Delete and immutable replacement. Never update (apply only).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# User rule modules, fetched by name and pinned by sha256: no list/watch needed.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
- apiGroups: ["alibabacloud.com"]
  resources: ["externalsecrets", "secretstores"]
  verbs: ["get", "list", "watch"]
# ExternalSecrets: add and remove the finalizer (patch){{ if not $watch }}; ClusterExternalSecret
# creates, applies and deletes the ExternalSecrets it stamps into namespaces{{ end }}.
- apiGroups: ["alibabacloud.com"]
  resources: ["externalsecrets"]
  verbs: {{ if $watch }}["patch"]{{ else }}["create", "patch", "delete"]{{ end }}
# SecretStores: remove ack-secret-manager's leftover finalizer (migration aid; nothing else).
- apiGroups: ["alibabacloud.com"]
  resources: ["secretstores"]
  verbs: ["patch"]
- apiGroups: ["alibabacloud.com"]
  resources: ["externalsecrets/status", "secretstores/status"]
  verbs: ["patch"]
# Owner references with blockOwnerDeletion on the Secrets an ExternalSecret owns need this
# where the OwnerReferencesPermissionEnforcement admission plugin is on.
- apiGroups: ["alibabacloud.com"]
  resources: ["externalsecrets/finalizers"]
  verbs: ["update"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.command.enableServiceAccountToken }}
# Per-ServiceAccount RRSA (serviceAccountRef): the role-ARN annotation, and a token.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
{{- end }}
{{- end }}

{{/*
Checks across values that values.schema.json cannot express. Included by the Deployment.
*/}}
{{- define "kmsync.validate" -}}
{{- if and (gt (int64 .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: replicas without a leader would all write the same Secrets" -}}
{{- end -}}
{{- $watch := fromJsonArray (include "kmsync.watchNamespaces" .) -}}
{{- range .Values.command.excludeNamespaces -}}
{{- if has . $watch -}}
{{- fail (printf "namespace %s is in both env.WATCH_NAMESPACE and command.excludeNamespaces" .) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.service.enabled) -}}
{{- fail "serviceMonitor.enabled needs metrics.service.enabled: the ServiceMonitor scrapes through the metrics Service" -}}
{{- end -}}
{{- if eq (int64 .Values.metrics.port) (int64 .Values.health.port) -}}
{{- fail "metrics.port and health.port must differ" -}}
{{- end -}}
{{- if and .Values.rrsa.enable .Values.rrsa.roleArn (not (include "kmsync.oidcProviderArn" .)) -}}
{{- fail "rrsa.roleArn needs an OIDC provider: set rrsa.oidcProviderArn, or command.aliuid and command.clusterId" -}}
{{- end -}}
{{- if and (or .Values.command.aliuid .Values.command.clusterId) (not (and .Values.command.aliuid .Values.command.clusterId)) -}}
{{- fail "command.aliuid and command.clusterId are used together (to build the RRSA OIDC provider ARN); set both or neither" -}}
{{- end -}}
{{- end -}}
