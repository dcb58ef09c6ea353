//! `agent tenants …` and `agent keys …`.

use anyhow::Context;
use clap::Subcommand;

use super::open_store;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant and print its id
    Create {
        /// Unique tenant name
        name: String,
    },
    /// List tenants
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key; the key is printed once, as the last line of output
    Create {
        /// Tenant name the key belongs to
        #[arg(long)]
        tenant: String,
        /// What the key may do: supervisor (read), admin (its tenant), or platform (every
        /// tenant: create tenants, assign numbers and plans; only made here, never over HTTP)
        #[arg(long, value_parser = ["admin", "supervisor", "platform"])]
        role: String,
    },
    /// Revoke an API key by id; requests with it get 401 from then on
    Revoke {
        /// Key id (as printed by `keys create` or `keys list`)
        id: String,
    },
    /// List a tenant's keys (never the secrets)
    List {
        /// Tenant name
        #[arg(long)]
        tenant: String,
    },
    /// Re-encrypt every stored secret (Zoho tokens) under security.encryption_key. Rotation:
    /// set the new key there, list the old one in security.previous_encryption_keys, run
    /// this, then remove the old key.
    RotateEncryption,
}

pub(super) async fn tenants(cmd: TenantsCommand, cfg: &Config) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    match cmd {
        TenantsCommand::Create { name } => {
            let t = store.create_tenant(&name, crate::clock::now_ms()).await?;
            println!("{}", t.id);
        }
        TenantsCommand::List => {
            for t in store.list_tenants().await? {
                println!("{}\t{}", t.id, t.name);
            }
        }
    }
    store.close().await;
    Ok(())
}

pub(super) async fn keys(cmd: KeysCommand, cfg: &Config) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    match cmd {
        KeysCommand::RotateEncryption => {
            let result = super::zoho::rotate_encryption(cfg, &store).await;
            store.close().await;
            return result;
        }
        KeysCommand::Create { tenant, role } => {
            let t = store.tenant_by_name(&tenant).await?.with_context(|| {
                format!("no tenant named {tenant:?} (create it with `agent tenants create`)")
            })?;
            let role = role.parse().map_err(anyhow::Error::msg)?;
            let new = store
                .create_api_key(&t.id, role, crate::clock::now_ms())
                .await?;
            println!(
                "id: {}\ntenant: {}\nrole: {}",
                new.key.id, t.name, new.key.role
            );
            println!("# the key is shown once; store it now:");
            println!("{}", new.secret);
        }
        KeysCommand::Revoke { id } => {
            store.revoke_api_key(&id, crate::clock::now_ms()).await?;
            println!("revoked {id}");
        }
        KeysCommand::List { tenant } => {
            let t = store
                .tenant_by_name(&tenant)
                .await?
                .with_context(|| format!("no tenant named {tenant:?}"))?;
            for k in store.list_api_keys(&t.id).await? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{}\t{}\t{}…\t{}", k.id, k.role, k.prefix, state);
            }
        }
    }
    store.close().await;
    Ok(())
}
