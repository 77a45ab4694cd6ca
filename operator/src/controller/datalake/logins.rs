//! The logins stage of a lake with Trino: its random key and TLS certificate read (made once
//! when missing), the
//! logins of its admin, workgroup users and Grant principals compiled (`desired::trino_auth`)
//! and applied as one set, pruning logins no longer granted — before the coordinator that
//! mounts their password file. A lake without Trino has no logins (all pruned).

use kube::Resource;
use kube::runtime::events::EventType;
use lakeform_api::datalake::DataLake;
use lakeform_api::grant::Grant;

use super::super::apply::Applier;
use super::super::context::Context;
use super::super::error::{Error, namespace};
use super::super::lake::{secret, secret_value};
use super::outcome::key;
use crate::desired::identity::Keyring;
use crate::desired::set::DesiredSet;
use crate::desired::trino;
use crate::desired::trino_auth::{self, CA_FILE, KEY_SECRET_KEY, KEYSTORE_FILE};

/// Length of the lake's random key.
const KEY_LENGTH: usize = 48;

/// Apply the lake's Trino logins (or prune them all when it has no Trino).
pub async fn apply(lake: &DataLake, ctx: &Context, grants: &[Grant]) -> Result<(), Error> {
    let ns = namespace(lake)?;
    let has_trino = lake
        .spec
        .query_engine
        .as_ref()
        .is_some_and(|q| q.trino.is_some());
    let set = match has_trino {
        false => trino_auth::no_logins(lake),
        true => {
            let (keys, ca) = key_material(lake, ctx, &ns).await?;
            let logins = trino_auth::compile(lake, grants, &keys);
            trino_auth::desired_set(lake, &logins, &keys, &ca).map_err(|e| {
                Error::Other(format!(
                    "serializing the Trino logins of DataLake {}: {e}",
                    key(lake)
                ))
            })?
        }
    };
    let applied = Applier::new(&ctx.client, &ns).apply(set).await?;
    if !applied.pruned.is_empty() {
        tracing::debug!(datalake = %key(lake), pruned = ?applied.pruned, "Trino logins pruned");
    }
    Ok(())
}

/// The lake's key and CA certificate, made once (an event says so) when their Secret is missing.
async fn key_material(
    lake: &DataLake,
    ctx: &Context,
    ns: &str,
) -> Result<(Keyring, String), Error> {
    let name = trino_auth::key_secret_name(lake);
    let mut live = secret(&ctx.client, ns, &name).await?;
    if live.is_none() {
        make_key_secret(lake, ctx, ns).await?;
        live = secret(&ctx.client, ns, &name).await?;
    }
    let value = |k: &str| live.as_ref().and_then(|s| secret_value(s, k));
    let (Some(key), Some(ca), Some(_)) =
        (value(KEY_SECRET_KEY), value(CA_FILE), value(KEYSTORE_FILE))
    else {
        return Err(Error::Other(format!(
            "Secret {ns}/{name} lacks {KEY_SECRET_KEY}, {CA_FILE} or {KEYSTORE_FILE}: delete it to have a new one made"
        )));
    };
    let keys = Keyring::new(&key)
        .ok_or_else(|| Error::Other(format!("Secret {ns}/{name}: unusable key")))?;
    Ok((keys, ca))
}

/// Create the key Secret: a random key, a CA and the coordinator's server certificate.
async fn make_key_secret(lake: &DataLake, ctx: &Context, ns: &str) -> Result<(), Error> {
    let name = trino_auth::key_secret_name(lake);
    let tls = crate::tls::server(&trino::service_name(lake), trino_auth::dns_names(lake)).map_err(
        |e| {
            Error::Other(format!(
                "making the TLS certificate of Secret {ns}/{name}: {e}"
            ))
        },
    )?;
    let mut set = DesiredSet::new(None);
    let owner = lake.clone();
    set.generate(name, move |tokens| {
        trino_auth::key_secret(&owner, tokens(KEY_LENGTH), &tls)
    });
    let applied = Applier::new(&ctx.client, ns).apply(set).await?;
    for made in applied.generated {
        let note = format!("generated Secret {made} (the Trino logins' key and TLS certificate)");
        ctx.event(
            &lake.object_ref(&()),
            EventType::Normal,
            "CredentialsCreated",
            "Create",
            note,
        )
        .await;
    }
    Ok(())
}
