//! The real garbage collector removes dependents of a deleted owner.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, PostParams};
use lakeform_e2e::{TestContext, wait_for_deleted};
use serde_json::json;

#[tokio::test]
async fn dependent_is_garbage_collected_after_its_owner() -> Result<()> {
    let ctx = TestContext::new("gc").await?;
    let cms = ctx.api::<ConfigMap>();

    let owner: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "owner" },
        "data": { "role": "owner" },
    }))?;
    let owner = cms.create(&PostParams::default(), &owner).await?;
    let owner_uid = owner.metadata.uid.clone().context("the owner has no uid")?;

    let dependent: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": "dependent",
            "labels": { "app.kubernetes.io/managed-by": "lakeform" },
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": "owner",
                "uid": owner_uid,
            }],
        },
        "data": { "role": "dependent" },
    }))?;
    let dependent = cms.create(&PostParams::default(), &dependent).await?;
    let dependent_uid = dependent.metadata.uid.clone().context("no uid")?;

    cms.delete("owner", &DeleteParams::background())
        .await
        .context("deleting the owner")?;
    wait_for_deleted(
        &cms,
        "dependent",
        &dependent_uid,
        "the garbage collector to delete the dependent ConfigMap after its owner was deleted \
         (is the garbagecollector controller of kube-controller-manager running?)",
        Duration::from_secs(60),
    )
    .await
}
