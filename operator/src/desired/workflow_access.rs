//! What `extract` steps need beyond the run: the Workflow's bookmark ConfigMap and a
//! ServiceAccount that may read and update exactly that ConfigMap (nothing else).

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use lakeform_api::workflow::{ExtractMode, Workflow};

use super::crawler::{bind_own_role, rule};
use super::meta::bounded;
use super::workflow::{COMPONENT, LABEL_WORKFLOW, label_value};

/// Annotation on a Workflow asking to forget every bookmark (the value is a token; each new
/// token resets once).
pub const RESET_ANNOTATION: &str = "lakeform.dev/reset-bookmarks";

/// Name of the Workflow's bookmark ConfigMap.
pub fn bookmarks_name(workflow: &Workflow) -> String {
    bounded(&workflow.name_any(), "-bookmarks", 253)
}

/// Name of the ServiceAccount extract steps run as.
pub fn service_account_name(workflow: &Workflow) -> String {
    bounded(&format!("lakeform-wf-{}", workflow.name_any()), "", 63)
}

/// Whether the workflow has a step that keeps bookmarks.
pub fn needs_bookmarks(workflow: &Workflow) -> bool {
    workflow
        .spec
        .steps
        .iter()
        .filter_map(|s| s.extract.as_ref())
        .any(|x| x.mode == ExtractMode::Incremental)
}

fn meta(workflow: &Workflow, name: String) -> ObjectMeta {
    let mut l = super::meta::labels(&workflow.spec.lake_ref.name, COMPONENT);
    l.insert(LABEL_WORKFLOW.into(), label_value(&workflow.name_any()));
    ObjectMeta {
        name: Some(name),
        namespace: workflow.namespace(),
        labels: Some(l),
        owner_references: workflow.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// The bookmark ConfigMap, without `data`: the operator owns the object, the steps its keys.
pub fn bookmarks(workflow: &Workflow) -> ConfigMap {
    ConfigMap {
        metadata: meta(workflow, bookmarks_name(workflow)),
        ..Default::default()
    }
}

/// The ServiceAccount of extract step pods.
pub fn service_account(workflow: &Workflow) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(workflow, service_account_name(workflow)),
        ..Default::default()
    }
}

/// Read and update the bookmark ConfigMap, by name; nothing else.
pub fn role(workflow: &Workflow) -> Role {
    Role {
        metadata: meta(workflow, service_account_name(workflow)),
        rules: Some(vec![rule(
            "",
            "configmaps",
            bookmarks_name(workflow),
            &["get", "patch"],
        )]),
    }
}

/// Binds [`role`] to [`service_account`].
pub fn role_binding(workflow: &Workflow) -> RoleBinding {
    bind_own_role(meta(workflow, service_account_name(workflow)))
}

/// The reset token not acted on yet.
pub fn pending_reset(workflow: &Workflow) -> Option<String> {
    let token = workflow
        .annotations()
        .get(RESET_ANNOTATION)?
        .trim()
        .to_string();
    let done = workflow
        .status
        .as_ref()
        .and_then(|s| s.last_bookmark_reset.as_deref());
    (!token.is_empty() && done != Some(token.as_str())).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(mode: &str) -> Workflow {
        let mut w: Workflow = serde_yaml::from_str(&format!(
            "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: load, namespace: shop, uid: u1}}
spec:
  lakeRef: {{name: lake}}
  steps:
    - name: pull
      extract:
        source: {{engine: Postgres, connectionSecretRef: {{name: pg, key: url}}}}
        tables: [shop/public/%]
        mode: {mode}
        targetDatabase: raw
"
        ))
        .expect("workflow");
        w.metadata.uid = Some("u1".into());
        w
    }

    #[test]
    fn the_step_account_may_touch_only_its_bookmarks() {
        let w = workflow("Incremental");
        assert!(needs_bookmarks(&w));
        assert!(!needs_bookmarks(&workflow("Snapshot")));
        let role = role(&w);
        let rules = role.rules.expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].resources, Some(vec!["configmaps".to_string()]));
        assert_eq!(
            rules[0].resource_names,
            Some(vec!["load-bookmarks".to_string()])
        );
        assert_eq!(rules[0].verbs, vec!["get", "patch"]);
        let cm = bookmarks(&w);
        assert!(cm.data.is_none(), "the operator never owns bookmark values");
        assert_eq!(cm.metadata.owner_references.expect("owner")[0].name, "load");
        assert_eq!(
            role_binding(&w).subjects.expect("subjects")[0].name,
            "lakeform-wf-load"
        );
    }

    #[test]
    fn each_reset_token_resets_once() {
        let mut w = workflow("Incremental");
        assert_eq!(pending_reset(&w), None);
        w.metadata.annotations = Some([(RESET_ANNOTATION.to_string(), "t1".to_string())].into());
        assert_eq!(pending_reset(&w).as_deref(), Some("t1"));
        w.status = Some(lakeform_api::workflow::WorkflowStatus {
            last_bookmark_reset: Some("t1".into()),
            ..Default::default()
        });
        assert_eq!(pending_reset(&w), None);
    }
}
