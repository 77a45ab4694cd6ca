//! deletionPolicy: Retain keeps buckets and objects; Delete empties and removes them. The
//! finalizer is removed either way.

use anyhow::{Result, ensure};
use lakeform_e2e::TestContext;
use lakeform_e2e::lake::{delete_bucket, put_object, s3_client};
use lakeform_e2e::operator::Operator;

use super::common::*;

#[tokio::test]
async fn retain_keeps_data_and_delete_removes_it() -> Result<()> {
    let ctx = TestContext::new("storage-delete").await?;
    let s3 = s3_client(&ctx.env);
    let suffix = &ctx.ns[ctx.ns.len() - 6..];
    secret(&ctx, "s3", &ctx.env.s3_access_key, &ctx.env.s3_secret_key).await?;
    let _op = Operator::start(&ctx, "3s")?;
    let keep = format!("keep{suffix}");
    let drop = format!("drop{suffix}");
    apply(
        &ctx,
        &lake_yaml(
            &keep,
            &ctx.env.s3_endpoint,
            "s3",
            "Retain",
            "    - name: raw\n",
        ),
    )
    .await?;
    apply(
        &ctx,
        &lake_yaml(
            &drop,
            &ctx.env.s3_endpoint,
            "s3",
            "Delete",
            "    - name: raw\n      versioning: true\n",
        ),
    )
    .await?;
    let kept = wait_ready(&ctx, &keep).await?;
    ensure!(
        kept.metadata
            .finalizers
            .clone()
            .unwrap_or_default()
            .contains(&"lakeform.dev/data".to_string())
    );
    wait_ready(&ctx, &drop).await?;
    let (keep_bucket, drop_bucket) = (format!("{keep}-raw"), format!("{drop}-raw"));
    put_object(&s3, &keep_bucket, "a/b.csv", b"x,y\n1,2\n".to_vec()).await?;
    put_object(&s3, &drop_bucket, "a/b.csv", b"x,y\n1,2\n".to_vec()).await?;
    put_object(&s3, &drop_bucket, "a/b.csv", b"x,y\n3,4\n".to_vec()).await?; // a second version

    delete_lake(&ctx, &keep).await?;
    ensure!(
        bucket_exists(&s3, &keep_bucket).await,
        "Retain keeps the bucket"
    );
    ensure!(
        s3.get_object()
            .bucket(&keep_bucket)
            .key("a/b.csv")
            .send()
            .await
            .is_ok(),
        "and its objects"
    );

    delete_lake(&ctx, &drop).await?;
    ensure!(
        !bucket_exists(&s3, &drop_bucket).await,
        "Delete removes the bucket (with all versions)"
    );

    delete_bucket(&s3, &keep_bucket).await?;
    Ok(())
}
