//! A Workflow with `spec.blueprintRef` is a blueprint instance, reconciled by its own pipeline:
//! dereference (the Blueprint or ClusterBlueprint) → decide (pure: expand, or keep the children
//! of an older blueprint generation) → expand (render and check every child;
//! [`crate::desired::blueprint`]) → check (the API server's dry-run of every child; a name
//! taken by an object that is not this instance's) → apply (the whole set, pruning children no
//! longer rendered) → status (`Ready`, `UpToDate`, `expandedFrom`, `children`).
//!
//! Nothing is applied unless every child passes: a refusal leaves the children of the last
//! good expansion as they are. A blueprint edited after an instance was expanded never
//! rewrites it: the instance shows `UpToDate=False` until its parameters change or it is
//! annotated `lakeform.dev/re-expand=<token>`.

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use lakeform_api::blueprint::{Blueprint, BlueprintSpec, ClusterBlueprint};
use lakeform_api::workflow::{BlueprintKind, Workflow, WorkflowStatus};

use super::super::apply::Applier;
use super::super::context::Context;
use super::super::error::{Error, KubeResultExt, Refusal, namespace};
use super::access::RECHECK;
use super::status::Status;
use crate::desired::blueprint::{self as build, RE_EXPAND_ANNOTATION, Source};

/// The condition saying whether the children follow the blueprint's current generation.
const UP_TO_DATE: &str = "UpToDate";

/// The blueprint as read: its generation and spec.
struct Found {
    kind: BlueprintKind,
    name: String,
    generation: i64,
    spec: BlueprintSpec,
}

/// What this pass does with the instance.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Render and apply (the re-expand token acted on, if that is why).
    Expand { token: Option<String> },
    /// Keep the children of generation `expanded`; the blueprint is at `current`.
    Keep { expanded: i64, current: i64 },
}

/// Pure: expand when never expanded, when the instance's spec changed since, when a new
/// re-expand token asks, or when the blueprint is still at the generation expanded from (a
/// no-op apply that repairs drift); otherwise keep the children as they are.
pub fn decide(
    wf: &Workflow,
    status: &WorkflowStatus,
    kind: BlueprintKind,
    name: &str,
    current: i64,
) -> Decision {
    let token = wf.annotations().get(RE_EXPAND_ANNOTATION).cloned();
    let Some(from) = &status.expanded_from else {
        return Decision::Expand { token };
    };
    let new_token = token.is_some() && token != status.last_re_expand;
    if from.kind != kind
        || from.name != name
        || Some(from.instance_generation) != wf.metadata.generation
        || new_token
        || from.generation == current
    {
        return Decision::Expand {
            token: if new_token {
                token
            } else {
                status.last_re_expand.clone()
            },
        };
    }
    Decision::Keep {
        expanded: from.generation,
        current,
    }
}

/// Read the blueprint the instance names (`None`: it does not exist).
async fn dereference(wf: &Workflow, ctx: &Context) -> Result<Option<Found>, Error> {
    let Some(r) = &wf.spec.blueprint_ref else {
        return Ok(None);
    };
    let what = || format!("reading {} {} (spec.blueprintRef)", r.kind, r.name);
    let found = match r.kind {
        BlueprintKind::Blueprint => {
            Api::<Blueprint>::namespaced(ctx.client.clone(), &namespace(wf)?)
                .get_opt(&r.name)
                .await
                .during(what)?
                .map(|b| (b.metadata.generation, b.spec))
        }
        BlueprintKind::ClusterBlueprint => Api::<ClusterBlueprint>::all(ctx.client.clone())
            .get_opt(&r.name)
            .await
            .during(what)?
            .map(|b| (b.metadata.generation, b.spec.blueprint)),
    };
    Ok(found.map(|(generation, spec)| Found {
        kind: r.kind,
        name: r.name.clone(),
        generation: generation.unwrap_or_default(),
        spec,
    }))
}

/// Render, check and apply every child; the status fields that record it.
async fn expand(
    wf: &Workflow,
    found: &Found,
    ctx: &Context,
    status: &mut Status,
) -> Result<Result<(), Refusal>, Error> {
    let source = Source {
        kind: found.kind,
        name: &found.name,
        generation: found.generation,
        spec: &found.spec,
    };
    let expansion = match build::expand(wf, source) {
        Ok(e) => e,
        Err(errors) => {
            let parameters = errors
                .0
                .iter()
                .all(|e| e.path.starts_with("spec.blueprintRef"));
            let reason = if parameters {
                "InvalidParameters"
            } else {
                "InvalidTemplate"
            };
            let message = format!("{} {}: {errors}; nothing applied", found.kind, found.name);
            return Ok(Err(Refusal::new(reason, message)));
        }
    };
    let ns = namespace(wf)?;
    let applier = Applier::new(&ctx.client, &ns);
    let refused = applier.check(&expansion.set).await?;
    if !refused.is_empty() {
        let message = format!(
            "{} {}: cannot apply {}; nothing applied",
            found.kind,
            found.name,
            refused.join("; ")
        );
        return Ok(Err(Refusal::new("ChildRejected", message)));
    }
    let applied = applier.apply(expansion.set).await?;
    if applied.writes > 0 {
        let pruned = if applied.pruned.is_empty() {
            String::new()
        } else {
            format!("; pruned {}", applied.pruned.join(", "))
        };
        status.event(
            EventType::Normal,
            "Expanded",
            format!(
                "{} {} generation {}: {} child(ren) applied{pruned}",
                found.kind,
                found.name,
                found.generation,
                expansion.children.len()
            ),
        );
    }
    let fields = status.fields();
    fields.expanded_from = Some(expansion.expanded_from);
    fields.children = expansion.children;
    Ok(Ok(()))
}

/// The `Ready` message: what the instance created.
fn summary(status: &mut Status) -> String {
    let children: Vec<String> = status
        .fields()
        .children
        .iter()
        .map(|c| format!("{} {}", c.kind, c.name))
        .collect();
    format!("{} child(ren): {}", children.len(), children.join(", "))
}

/// Reconcile a blueprint instance.
pub async fn reconcile(wf: &Workflow, ctx: &Context, mut status: Status) -> Result<Action, Error> {
    let Some(found) = dereference(wf, ctx).await? else {
        let r = wf.spec.blueprint_ref.clone().unwrap_or_default();
        let refusal = Refusal::new(
            "BlueprintNotFound",
            format!(
                "{} {} (spec.blueprintRef) does not exist; the children stay as they are",
                r.kind, r.name
            ),
        )
        .retry_after(RECHECK);
        return refuse(wf, ctx, status, refusal).await;
    };
    let last = wf.status.clone().unwrap_or_default();
    match decide(wf, &last, found.kind, &found.name, found.generation) {
        Decision::Expand { token } => {
            if let Err(refusal) = expand(wf, &found, ctx, &mut status).await? {
                return refuse(wf, ctx, status, refusal).await;
            }
            status.fields().last_re_expand = token;
            let message = summary(&mut status);
            status.ready(true, "Expanded", message);
            status.condition(
                UP_TO_DATE,
                true,
                "Expanded",
                format!(
                    "expanded from {} {} generation {}",
                    found.kind, found.name, found.generation
                ),
            );
        }
        Decision::Keep { expanded, current } => {
            if !status.has(UP_TO_DATE, "BlueprintChanged") {
                status.event(
                    EventType::Normal,
                    "BlueprintChanged",
                    format!("{} {} changed (generation {expanded} → {current}); the children stay as expanded", found.kind, found.name),
                );
            }
            let message = summary(&mut status);
            status.ready(true, "Expanded", message);
            status.condition(
                UP_TO_DATE,
                false,
                "BlueprintChanged",
                format!(
                    "expanded from {} {} generation {expanded}; it is at generation {current}: \
                     change the parameters or annotate {RE_EXPAND_ANNOTATION}=<token> to re-expand",
                    found.kind, found.name
                ),
            );
        }
    }
    status.write(wf, ctx).await?;
    ctx.reset_backoff(&super::key(wf));
    ctx.metrics.reconciled("Workflow", "ok");
    Ok(Action::requeue(ctx.resync))
}

async fn refuse(
    wf: &Workflow,
    ctx: &Context,
    mut status: Status,
    refusal: Refusal,
) -> Result<Action, Error> {
    let action = refusal.action();
    status.refuse(refusal);
    status.write(wf, ctx).await?;
    Ok(action)
}

/// Whether `wf` is an instance of the blueprint `kind`/`name` (a Blueprint: in namespace `ns`).
pub fn names_blueprint(wf: &Workflow, kind: BlueprintKind, name: &str, ns: Option<&str>) -> bool {
    wf.spec.blueprint_ref.as_ref().is_some_and(|r| {
        r.kind == kind
            && r.name == name
            && (kind == BlueprintKind::ClusterBlueprint || wf.meta().namespace.as_deref() == ns)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakeform_api::workflow::ExpandedFrom;

    fn wf(generation: i64, token: Option<&str>) -> Workflow {
        let mut w: Workflow = serde_yaml::from_str(
            "apiVersion: lakeform.dev/v1alpha1\nkind: Workflow\nmetadata: {name: i, namespace: n}\nspec:\n  lakeRef: {name: main}\n  blueprintRef: {name: bp}\n",
        )
        .expect("workflow");
        w.metadata.generation = Some(generation);
        if let Some(t) = token {
            w.annotations_mut()
                .insert(RE_EXPAND_ANNOTATION.into(), t.into());
        }
        w
    }

    fn expanded(generation: i64, instance_generation: i64, token: Option<&str>) -> WorkflowStatus {
        WorkflowStatus {
            expanded_from: Some(ExpandedFrom {
                kind: BlueprintKind::Blueprint,
                name: "bp".into(),
                generation,
                instance_generation,
            }),
            last_re_expand: token.map(str::to_string),
            ..Default::default()
        }
    }

    const BP: BlueprintKind = BlueprintKind::Blueprint;

    #[test]
    fn a_changed_blueprint_is_not_applied_until_asked() {
        let expand = |token: Option<&str>| Decision::Expand {
            token: token.map(str::to_string),
        };
        // never expanded; same generation (drift repair)
        assert_eq!(
            decide(&wf(1, None), &WorkflowStatus::default(), BP, "bp", 4),
            expand(None)
        );
        assert_eq!(
            decide(&wf(1, None), &expanded(4, 1, None), BP, "bp", 4),
            expand(None)
        );
        // the blueprint moved on: keep
        assert_eq!(
            decide(&wf(1, None), &expanded(4, 1, None), BP, "bp", 5),
            Decision::Keep {
                expanded: 4,
                current: 5
            }
        );
        // the instance's parameters changed, or a new token: expand
        assert_eq!(
            decide(&wf(2, None), &expanded(4, 1, None), BP, "bp", 5),
            expand(None)
        );
        assert_eq!(
            decide(&wf(1, Some("t1")), &expanded(4, 1, None), BP, "bp", 5),
            expand(Some("t1"))
        );
        // a token already acted on does not re-expand again
        assert_eq!(
            decide(&wf(1, Some("t1")), &expanded(4, 1, Some("t1")), BP, "bp", 5),
            Decision::Keep {
                expanded: 4,
                current: 5
            }
        );
        // another blueprint named: expand
        assert_eq!(
            decide(&wf(1, None), &expanded(4, 1, None), BP, "other", 5),
            expand(None)
        );
    }
}
