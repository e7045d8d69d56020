//! `arca.v1.VaultService`.

use std::sync::Arc;

use arca_core::network::{DefaultAction, NetworkRules};
use arca_core::{read, Command, Outcome, Sku, StateView};
use arca_proto::v1 as pb;
use arca_proto::v1::vault_service_server::VaultService;
use arca_types::limits::RETENTION_DAYS_DEFAULT;
use arca_types::{ArcaError, ErrorCode, VaultName};
use tonic::{Request, Response, Status};

use crate::access::Action;
use crate::api::{next_token, page_size, page_token, parse_consistency, Api, Call, Target, Visible, WRITE};
use crate::convert;

pub struct Vaults(pub Arc<Api>);

fn outcome_vault(o: Outcome) -> Result<arca_core::VaultRecord, ArcaError> {
    match o {
        Outcome::Vault(v) => Ok(v),
        _ => Err(ArcaError::internal("a vault command produced another kind of outcome")),
    }
}

impl Vaults {
    fn suffix(&self) -> &str {
        &self.0.engine.vault_suffix
    }

    /// Authorizes `action` at `target` (the vault, or the cluster for a vault that does not exist
    /// yet or no longer does), then runs the command.
    async fn write(
        &self,
        call: &mut crate::api::Call,
        action: Action,
        target: Target<'_>,
        name: &str,
        command: impl FnOnce(VaultName) -> Result<Command, ArcaError>,
    ) -> Result<Outcome, ArcaError> {
        self.0.authorize(call, action, target, WRITE).await?;
        let name = VaultName::parse(name)?;
        call.set_vault(&name);
        let command = command(name)?;
        self.0.engine.execute(&command, call.client_request().as_ref()).await
    }
}

#[tonic::async_trait]
impl VaultService for Vaults {
    async fn create_vault(&self, request: Request<pb::CreateVaultRequest>) -> Result<Response<pb::Vault>, Status> {
        let mut call = self.0.begin(&request, "VaultCreate");
        let r = request.into_inner();
        let entropy = self.0.engine.seal.entropy().clone();
        let result = self
            .write(&mut call, Action::VaultWrite, Target::Cluster, &r.name, |name| {
                let sku = match pb::Sku::try_from(r.sku) {
                    Ok(pb::Sku::Unspecified) | Ok(pb::Sku::Standard) => Sku::Standard,
                    Ok(pb::Sku::Premium) => Sku::Premium,
                    Err(_) => return Err(ArcaError::bad_parameter("sku", "sku must be SKU_STANDARD or SKU_PREMIUM")),
                };
                let retention = match r.soft_delete_retention_days {
                    0 => RETENTION_DAYS_DEFAULT,
                    n if n > 0 => n as u32,
                    n => {
                        return Err(ArcaError::bad_parameter(
                            "soft_delete_retention_days",
                            format!("soft_delete_retention_days must be 7-90, it is {n}"),
                        ))
                    }
                };
                Ok(Command::CreateVault {
                    name,
                    id: entropy.bytes16(),
                    sku,
                    retention_days: retention,
                    purge_protection: r.enable_purge_protection,
                    tags: convert::tags(&r.tags),
                })
            })
            .await
            .and_then(outcome_vault)
            .map(|v| convert::vault(&v, self.suffix()));
        self.0.finish(call, result)
    }

    async fn get_vault(&self, request: Request<pb::GetVaultRequest>) -> Result<Response<pb::Vault>, Status> {
        let mut call = self.0.begin(&request, "VaultGet");
        let r = request.into_inner();
        let result = async {
            let freshness = Some(parse_consistency(r.read_options.as_ref())?);
            let ks = authorize_vault_read(&self.0, &mut call, &r.name, freshness).await?;
            let name = VaultName::parse(&r.name)?;
            let view = ks.recording_view();
            let record = read::get_vault(&view, &name)?;
            let mut vault = convert::vault(&record, self.suffix());
            vault.network_acls = Some(convert::network_acls(&view.network_rules(&record)?));
            Ok(vault)
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_vaults(
        &self,
        request: Request<pb::ListVaultsRequest>,
    ) -> Result<Response<pb::ListVaultsResponse>, Status> {
        let mut call = self.0.begin(&request, "VaultList");
        let r = request.into_inner();
        let result = list(&self.0, &mut call, &r, false).await;
        self.0.finish(call, result)
    }

    async fn update_vault(&self, request: Request<pb::UpdateVaultRequest>) -> Result<Response<pb::Vault>, Status> {
        let mut call = self.0.begin(&request, "VaultUpdate");
        let r = request.into_inner();
        let result = self
            .write(&mut call, Action::VaultWrite, Target::Vault(&r.name), &r.name, |name| {
                let paths: Vec<String> = r.update_mask.map(|m| m.paths).unwrap_or_default();
                let all = paths.is_empty();
                for p in &paths {
                    if p != "tags" && p != "enable_purge_protection" {
                        return Err(ArcaError::bad_parameter(
                            "update_mask",
                            format!("'{p}' cannot be updated; use tags or enable_purge_protection"),
                        ));
                    }
                }
                let has = |p: &str| all || paths.iter().any(|x| x == p);
                Ok(Command::UpdateVault {
                    name,
                    tags: has("tags").then(|| convert::tags(&r.tags)),
                    purge_protection: has("enable_purge_protection").then_some(r.enable_purge_protection),
                })
            })
            .await
            .and_then(outcome_vault)
            .map(|v| convert::vault(&v, self.suffix()));
        self.0.finish(call, result)
    }

    async fn set_vault_network_rules(
        &self,
        request: Request<pb::SetVaultNetworkRulesRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let mut call = self.0.begin(&request, "VaultNetworkRulesSet");
        let r = request.into_inner();
        let mut set = None;
        let result = self
            .write(&mut call, Action::VaultWrite, Target::Vault(&r.name), &r.name, |name| {
                let acls = r.network_acls.unwrap_or_default();
                let default_action = match pb::DefaultAction::try_from(acls.default_action) {
                    Ok(pb::DefaultAction::Unspecified) | Ok(pb::DefaultAction::Allow) => DefaultAction::Allow,
                    Ok(pb::DefaultAction::Deny) => DefaultAction::Deny,
                    Err(_) => {
                        return Err(ArcaError::bad_parameter(
                            "network_acls.default_action",
                            "default_action must be DEFAULT_ACTION_ALLOW or DEFAULT_ACTION_DENY",
                        ))
                    }
                };
                let rules = NetworkRules::parse(default_action, &acls.ip_rules)?;
                set = Some(rules.clone());
                Ok(Command::SetNetworkRules { name, rules })
            })
            .await
            .and_then(outcome_vault)
            .map(|v| {
                let mut vault = convert::vault(&v, self.suffix());
                vault.network_acls = set.as_ref().map(convert::network_acls);
                vault
            });
        self.0.finish(call, result)
    }

    async fn delete_vault(&self, request: Request<pb::DeleteVaultRequest>) -> Result<Response<pb::Vault>, Status> {
        let mut call = self.0.begin(&request, "VaultDelete");
        let r = request.into_inner();
        let result = self
            .write(&mut call, Action::VaultDelete, Target::Vault(&r.name), &r.name, |name| {
                Ok(Command::DeleteVault { name })
            })
            .await
            .and_then(outcome_vault)
            .map(|v| convert::vault(&v, self.suffix()));
        self.0.finish(call, result)
    }

    async fn get_deleted_vault(
        &self,
        request: Request<pb::GetDeletedVaultRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let mut call = self.0.begin(&request, "VaultGetDeleted");
        let r = request.into_inner();
        let result = async {
            let freshness = Some(parse_consistency(r.read_options.as_ref())?);
            let ks = self.0.authorize(&mut call, Action::VaultDeletedRead, Target::Cluster, freshness).await?;
            let name = VaultName::parse(&r.name)?;
            call.set_vault(&name);
            read::get_deleted_vault(&ks.recording_view(), &name).map(|v| convert::vault(&v, self.suffix()))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_deleted_vaults(
        &self,
        request: Request<pb::ListVaultsRequest>,
    ) -> Result<Response<pb::ListVaultsResponse>, Status> {
        let mut call = self.0.begin(&request, "VaultListDeleted");
        let r = request.into_inner();
        let result = list(&self.0, &mut call, &r, true).await;
        self.0.finish(call, result)
    }

    async fn recover_deleted_vault(
        &self,
        request: Request<pb::RecoverDeletedVaultRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let mut call = self.0.begin(&request, "VaultRecover");
        let r = request.into_inner();
        let result = self
            .write(&mut call, Action::VaultWrite, Target::Cluster, &r.name, |name| Ok(Command::RecoverVault { name }))
            .await
            .and_then(outcome_vault)
            .map(|v| convert::vault(&v, self.suffix()));
        self.0.finish(call, result)
    }

    async fn purge_deleted_vault(
        &self,
        request: Request<pb::PurgeDeletedVaultRequest>,
    ) -> Result<Response<()>, Status> {
        let mut call = self.0.begin(&request, "VaultPurge");
        let r = request.into_inner();
        let result = self
            .write(&mut call, Action::VaultPurge, Target::Cluster, &r.name, |name| Ok(Command::PurgeVault { name }))
            .await
            .map(|_| ());
        self.0.finish(call, result)
    }
}

/// Authorizes reading a vault: `Microsoft.KeyVault/vaults/read` at it, or any role assignment on
/// the vault or one of its objects (whoever may use a vault may see it).
async fn authorize_vault_read(
    api: &Api,
    call: &mut Call,
    name: &str,
    freshness: crate::api::Freshness,
) -> Result<crate::keyspace::Keyspace, ArcaError> {
    match api.authorize(call, Action::VaultRead, Target::Vault(name), freshness).await {
        Err(refused) if refused.code == ErrorCode::ForbiddenByRbac => {
            let keyspace = api.engine.seal.keyspace()?;
            let vault = VaultName::parse(name)?;
            if holds_any_within(api, &keyspace, call)?.contains(vault.canonical()) {
                Ok(keyspace)
            } else {
                Err(refused)
            }
        }
        other => other,
    }
}

/// The vaults at or below which the caller holds any role assignment.
fn holds_any_within(
    api: &Api,
    keyspace: &crate::keyspace::Keyspace,
    call: &Call,
) -> Result<std::collections::BTreeSet<String>, ArcaError> {
    let mut vaults = std::collections::BTreeSet::new();
    for action in [Action::VaultRead, Action::SecretReadMetadata, Action::SecretGet, Action::KeyRead] {
        vaults.extend(
            api.objects_granting(keyspace, call, action, |scope| scope.vault().map(|v| v.canonical().to_owned()))?,
        );
    }
    Ok(vaults)
}

async fn list(
    api: &Api,
    call: &mut crate::api::Call,
    r: &pb::ListVaultsRequest,
    deleted: bool,
) -> Result<pb::ListVaultsResponse, ArcaError> {
    let freshness = Some(parse_consistency(r.read_options.as_ref())?);
    let action = if deleted { Action::VaultDeletedRead } else { Action::VaultRead };
    let (ks, visible) = match api.authorize(call, action, Target::Cluster, freshness).await {
        Ok(ks) => (ks, Visible::All),
        Err(refused) if refused.code == ErrorCode::ForbiddenByRbac && !deleted => {
            let ks = api.engine.seal.keyspace()?;
            let vaults = holds_any_within(api, &ks, call)?;
            if vaults.is_empty() {
                return Err(refused);
            }
            (ks, Visible::Only(vaults))
        }
        Err(e) => return Err(e),
    };
    let limit = page_size(r.page_size)?;
    let after = page_token(&r.page_token)?;
    let mut page = read::list_vaults(&ks.recording_view(), deleted, after.as_deref(), limit)?;
    page.items.retain(|v| visible.shows(v.name.canonical()));
    Ok(pb::ListVaultsResponse {
        vaults: page.items.iter().map(|v| convert::vault(v, &api.engine.vault_suffix)).collect(),
        next_page_token: next_token(page.next),
    })
}
