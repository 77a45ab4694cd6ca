{{/*
Chart name, or nameOverride.
*/}}
{{- define "lakeform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every object: fullnameOverride, else the release name (with the chart name
appended unless the release name already contains it). Kept to 50 characters so that suffixes
such as "-leader-election" still fit in 63.
*/}}
{{- define "lakeform.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name prefix of cluster-scoped objects (ClusterRoles, ClusterRoleBindings): the full name plus the
release namespace, so that releases in different namespaces (namespaced mode: one operator per
team namespace) never claim the same cluster-scoped object.
*/}}
{{- define "lakeform.clusterName" -}}
{{- printf "%s-%s" (include "lakeform.fullname" .) .Release.Namespace | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "lakeform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object of the release.
*/}}
{{- define "lakeform.labels" -}}
helm.sh/chart: {{ include "lakeform.chart" . }}
{{ include "lakeform.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lakeform
{{- end }}

{{/*
Labels that select the operator pods (Deployment selector, Services).
*/}}
{{- define "lakeform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lakeform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "lakeform.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lakeform.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image: one version, set in one place (the tag defaults to the chart's appVersion).
*/}}
{{- define "lakeform.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
Image of the crawl and step Jobs: workerImage, else the operator image.
*/}}
{{- define "lakeform.workerImage" -}}
{{- .Values.workerImage | default (include "lakeform.image" .) }}
{{- end }}

{{/*
Name of the events receiver Service.
*/}}
{{- define "lakeform.eventsServiceName" -}}
{{- printf "%s-events" (include "lakeform.fullname" .) }}
{{- end }}

{{/*
Name of the Secret holding the events bearer token.
*/}}
{{- define "lakeform.eventsSecretName" -}}
{{- .Values.events.existingSecret | default (printf "%s-events" (include "lakeform.fullname" .)) }}
{{- end }}

{{/*
The RBAC rules the operator needs in every namespace it works in — rendered into a ClusterRole
(all namespaces) or into one Role per watched namespace. Each rule names the code that needs it
(paths under operator/src). The operator creates Roles for crawl and step Jobs
(desired/crawler.rs `role`, desired/workflow_access.rs `role`); Kubernetes refuses to create a Role
granting what its creator does not hold, so every rule of those Roles is covered here too (no
`escalate` or `bind` is needed).
*/}}
{{- define "lakeform.rules" -}}
# DataLake controller: watch (controller/datalake/mod.rs `run`), add/remove its finalizer
# (`finalizer()` patches metadata.finalizers); Crawler, Workflow and WorkflowRun controllers
# read the referenced lake (crawler/mod.rs, workflow/mod.rs, workflow_run/mod.rs `get_opt`);
# the Crawler's Role grants crawl Jobs `get` on their lake (desired/crawler.rs `role`).
- apiGroups: [lakeform.dev]
  resources: [datalakes]
  verbs: [get, list, watch, patch]
# DataLake conditions and endpoints (controller/datalake/status.rs `patch_status`).
- apiGroups: [lakeform.dev]
  resources: [datalakes/status]
  verbs: [patch]
# Crawler controller: watch (controller/crawler/mod.rs `run`), read the live object before an
# event batch (controller/notifications/batcher.rs) and before a status write
# (crawler/status.rs); crawl Jobs' Role grants `get` on their Crawler. Blueprint instances
# dry-run, apply and prune the Crawlers they render (controller/workflow/instance.rs,
# controller/apply.rs `Applier::check`, `apply`: get, server-side apply (create, patch), list,
# delete).
- apiGroups: [lakeform.dev]
  resources: [crawlers]
  verbs: [get, list, watch, create, patch, delete]
# Crawler status (controller/crawler/status.rs `patch_status`); the crawl Jobs' Role grants
# `get` and `patch` on their Crawler's status (worker/src/crawl: `get_status`, `patch_status`).
- apiGroups: [lakeform.dev]
  resources: [crawlers/status]
  verbs: [get, patch]
# Workflow controller: watch (controller/workflow/mod.rs `run`), read triggers' upstream
# workflows (`get`), hand an event batch to a Workflow by annotation
# (controller/notifications/batcher.rs `Patch::Merge`); blueprint instances dry-run, apply and
# prune the Workflows they render (controller/workflow/instance.rs: get, server-side apply
# (create, patch), list, delete); the Blueprint controller counts instances
# (controller/blueprint.rs `list`).
- apiGroups: [lakeform.dev]
  resources: [workflows]
  verbs: [get, list, watch, create, patch, delete]
# Workflow status (controller/workflow/status.rs `patch_status`, server-side apply).
- apiGroups: [lakeform.dev]
  resources: [workflows/status]
  verbs: [patch]
# WorkflowRun controller: watch (controller/workflow_run/mod.rs `run`); the Workflow controller
# creates runs, cancels replaced ones and trims history (workflow/runs.rs `create`, `patch`,
# `delete`); a hand-made run is adopted by its Workflow (workflow_run/mod.rs `patch`).
- apiGroups: [lakeform.dev]
  resources: [workflowruns]
  verbs: [get, list, watch, create, patch, delete]
# Blueprint controller: watch and validate (controller/blueprint.rs `run`); instances read the
# Blueprint they name (controller/workflow/instance.rs `dereference`); the Workflow controller
# watches Blueprints to mark instances UpToDate=False (workflow/mod.rs `run`).
- apiGroups: [lakeform.dev]
  resources: [blueprints]
  verbs: [get, list, watch]
# Blueprint status (controller/blueprint.rs `write`, server-side apply).
- apiGroups: [lakeform.dev]
  resources: [blueprints/status]
  verbs: [patch]
# Grants: the DataLake controller watches them (datalake/mod.rs `watches`) and lists a lake's
# Grants to compile Trino's access rules and MinIO identities (datalake/grants.rs `compile`).
# (It also watches and lists Crawlers, for their identities: the crawlers rule above.)
- apiGroups: [lakeform.dev]
  resources: [grants]
  verbs: [list, watch]
# Grant status (controller/datalake/grants.rs `write_status`, server-side apply).
- apiGroups: [lakeform.dev]
  resources: [grants/status]
  verbs: [patch]
# Run and step states (controller/workflow_run/status.rs `patch_status`, server-side apply).
- apiGroups: [lakeform.dev]
  resources: [workflowruns/status]
  verbs: [patch]
# Generated credentials are created once (controller/apply.rs `Applier::create_once`); the
# MinIO webhook token Secret is applied (controller/apply.rs: get + server-side apply);
# the DataLake controller watches Secrets to react to credential changes (datalake/mod.rs
# `watches`); storage, catalog, workflow and event code read credentials (controller/lake.rs
# `secret`, `get_opt`); crawl
# Jobs' Role grants `get` on their credentials Secret (a managed lake's: the Crawler's identity).
# A managed lake's S3 identity Secrets (desired/identity.rs `desired_set`) are applied and
# pruned as one set once MinIO holds the users (controller/datalake/identities.rs: list, delete). The stores' generated credentials
# carry no owner reference (they outlive a DataLake under deletionPolicy Retain) and are deleted
# by its cleanup under Delete (controller/datalake/objects.rs `delete_kept_secrets`).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
# Connection-info, Trino and bookmark ConfigMaps are applied (controller/apply.rs: get +
# server-side apply, which creates); the DataLake controller owns them (list, watch) and prunes
# unwanted ones (controller/apply.rs `Applier`: list, delete); event batches are ConfigMaps
# (controller/notifications/batcher.rs `create`, `patch` of owner references;
# workflow/runs.rs `hand_over_keys`); bookmark resets (workflow/access.rs `patch`); extract
# steps' Role grants `get` and `patch` on the bookmark ConfigMap (desired/workflow_access.rs
# `role`).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, delete]
# MinIO, Lakekeeper, Postgres and Trino Services: applied (controller/apply.rs), owned by the
# DataLake controller (list, watch), pruned (controller/apply.rs `Applier`).
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# ServiceAccounts of crawl Jobs (controller/crawler/mod.rs) and extract steps
# (controller/workflow/access.rs), applied with controller/apply.rs (get + server-side apply).
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create, patch]
# The Roles and RoleBindings of those ServiceAccounts (desired/crawler.rs and
# desired/workflow_access.rs `role`, `role_binding`), applied with controller/apply.rs; the
# identity Secrets' reader Roles and their bindings to Grant principals (desired/identity.rs
# `desired_set`), applied and pruned as one set (controller/datalake/identities.rs: list,
# delete).
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, create, patch, delete]
# Events: kube-runtime's Recorder (controller/context.rs `event`, crawler/runs.rs) creates
# events.k8s.io/v1 Events and patches a repeated one's series; core/v1 events are not used.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# MinIO and Postgres StatefulSets, Lakekeeper and Trino Deployments: applied
# (controller/apply.rs), owned (list, watch), read for readiness (datalake/storage.rs,
# datalake/objects.rs `deployment_available`), pruned (controller/apply.rs `Applier`).
- apiGroups: [apps]
  resources: [statefulsets, deployments]
  verbs: [get, list, watch, create, patch, delete]
# Crawl Jobs (controller/crawler/runs.rs, controller/notifications/batcher.rs: create, get,
# list, mark failures reported with patch, delete old ones), step Jobs
# (controller/workflow_run/mod.rs: create, list, delete), the Lakekeeper migration Job
# (desired/lake.rs, applied), pruned by controller/apply.rs `Applier`; watched by the Crawler
# and WorkflowRun controllers.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
# A scheduled Crawler's CronJob: applied (controller/apply.rs), owned (list, watch), suspended
# when paused (crawler/mod.rs `suspend_cronjob`: patch), pruned without a schedule
# (controller/apply.rs `Applier`, from crawler/mod.rs `apply_set`).
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, watch, create, patch, delete]
# `spark` steps: one SparkApplication per attempt (controller/workflow_run/mod.rs: `create`,
# `list` by run label, `delete` of a timed-out or cancelled attempt).
- apiGroups: [sparkoperator.k8s.io]
  resources: [sparkapplications]
  verbs: [list, create, delete]
{{- end }}
