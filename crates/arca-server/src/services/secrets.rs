//! `arca.v1.SecretService`.

use std::sync::Arc;

use arca_core::read::{self, SecretView};
use arca_core::{Command, Outcome};
use arca_proto::v1 as pb;
use arca_proto::v1::secret_service_server::SecretService;
use arca_types::{ArcaError, ObjectName, SecretString, VaultName, VersionId};
use tonic::{Request, Response, Status};

use crate::access::Action;
use crate::api::{
    next_token, offset_window, page_size, page_token, parse_consistency, Api, Call, Freshness, Target, WRITE,
};
use crate::convert;
use crate::keyspace::Keyspace;
use arca_rbac::ObjectKind;

pub struct Secrets(pub Arc<Api>);

fn outcome_secret(o: Outcome) -> Result<SecretView, ArcaError> {
    match o {
        Outcome::Secret { vault, secret, version } => Ok(SecretView { vault, secret, version }),
        _ => Err(ArcaError::internal("a secret command produced another kind of outcome")),
    }
}

impl Secrets {
    fn suffix(&self) -> &str {
        &self.0.engine.vault_suffix
    }

    /// Authorizes at the secret (after a read barrier as fresh as `freshness`), parses the vault and
    /// secret names, and records the object for audit.
    async fn open(
        &self,
        call: &mut Call,
        action: Action,
        vault: &str,
        name: &str,
        freshness: Freshness,
    ) -> Result<(Keyspace, VaultName, ObjectName), ArcaError> {
        self.0.touch(call, name);
        let target = Target::Object { vault, kind: ObjectKind::Secrets, name };
        let ks = self.0.authorize(call, action, target, freshness).await?;
        Ok((ks, VaultName::parse(vault)?, ObjectName::parse("name", name)?))
    }

    /// One page of live (or deleted) secrets of a vault, with their latest version's metadata.
    async fn list_page(
        &self,
        call: &mut Call,
        vault: &str,
        raw_page_size: i32,
        raw_page_token: &str,
        read_options: Option<&pb::ReadOptions>,
        deleted: bool,
    ) -> Result<arca_core::view::Page<SecretView>, ArcaError> {
        let freshness = Some(parse_consistency(read_options)?);
        let (ks, visible) =
            self.0.authorize_list(call, Action::SecretReadMetadata, vault, ObjectKind::Secrets, freshness).await?;
        let vault = VaultName::parse(vault)?;
        let limit = page_size(raw_page_size)?;
        let after = page_token(raw_page_token)?;
        let mut page = read::list_secrets(&ks.recording_view(), &vault, deleted, after.as_deref(), limit)?;
        page.items.retain(|v| visible.shows(&v.secret.name.canonical()));
        Ok(page)
    }

    async fn run(&self, call: &Call, command: Command) -> Result<SecretView, ArcaError> {
        self.0.engine.execute(&command, call.client_request().as_ref()).await.and_then(outcome_secret)
    }
}

#[tonic::async_trait]
impl SecretService for Secrets {
    async fn set_secret(&self, request: Request<pb::SetSecretRequest>) -> Result<Response<pb::Secret>, Status> {
        let mut call = self.0.begin(&request, "SecretSet");
        let r = request.into_inner();
        let result = async {
            let (_, vault, name) = self.open(&mut call, Action::SecretSet, &r.vault, &r.name, WRITE).await?;
            let command = Command::SetSecret {
                vault,
                name,
                version: VersionId::from_bytes(self.0.engine.seal.entropy().bytes16()),
                value: SecretString::new(r.value),
                content_type: (!r.content_type.is_empty()).then_some(r.content_type),
                tags: convert::tags(&r.tags),
                enabled: r.enabled.unwrap_or(true),
                not_before: convert::from_ts("not_before", r.not_before.as_ref())?,
                expires: convert::from_ts("expires", r.expires.as_ref())?,
            };
            self.run(&call, command).await.map(|v| convert::secret(&v, self.suffix(), true))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn get_secret(&self, request: Request<pb::GetSecretRequest>) -> Result<Response<pb::Secret>, Status> {
        let mut call = self.0.begin(&request, "SecretGet");
        let r = request.into_inner();
        let result = async {
            let freshness = Some(parse_consistency(r.read_options.as_ref())?);
            let (ks, vault, name) = self.open(&mut call, Action::SecretGet, &r.vault, &r.name, freshness).await?;
            let version = VersionId::parse_optional(&r.version)?;
            read::get_secret(&ks.recording_view(), &vault, &name, version.as_ref())
                .map(|v| convert::secret(&v, self.suffix(), true))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_secrets(
        &self,
        request: Request<pb::ListSecretsRequest>,
    ) -> Result<Response<pb::ListSecretsResponse>, Status> {
        let mut call = self.0.begin(&request, "SecretList");
        let r = request.into_inner();
        let result = async {
            let page =
                self.list_page(&mut call, &r.vault, r.page_size, &r.page_token, r.read_options.as_ref(), false).await?;
            Ok(pb::ListSecretsResponse {
                secrets: page.items.iter().map(|v| convert::secret(v, self.suffix(), false)).collect(),
                next_page_token: next_token(page.next),
            })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_secret_versions(
        &self,
        request: Request<pb::ListSecretVersionsRequest>,
    ) -> Result<Response<pb::ListSecretsResponse>, Status> {
        let mut call = self.0.begin(&request, "SecretListVersions");
        let r = request.into_inner();
        let result = async {
            let freshness = Some(parse_consistency(r.read_options.as_ref())?);
            let (ks, vault, name) =
                self.open(&mut call, Action::SecretReadMetadata, &r.vault, &r.name, freshness).await?;
            let mut next_page_token = String::new();
            let (vault_rec, secret, versions) =
                read::secret_versions_in(&ks.recording_view(), &vault, &name, |total| {
                    let (range, next) = offset_window(total, r.page_size, &r.page_token)?;
                    next_page_token = next;
                    Ok(range)
                })?;
            let secrets = versions
                .iter()
                .map(|v| {
                    convert::secret(
                        &SecretView { vault: vault_rec.clone(), secret: secret.clone(), version: v.clone() },
                        self.suffix(),
                        false,
                    )
                })
                .collect();
            Ok(pb::ListSecretsResponse { secrets, next_page_token })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn update_secret(&self, request: Request<pb::UpdateSecretRequest>) -> Result<Response<pb::Secret>, Status> {
        let mut call = self.0.begin(&request, "SecretUpdate");
        let r = request.into_inner();
        let result = async {
            let (_, vault, name) = self.open(&mut call, Action::SecretUpdate, &r.vault, &r.name, WRITE).await?;
            let has = crate::api::update_mask(
                r.update_mask.as_ref(),
                &["content_type", "tags", "enabled", "not_before", "expires"],
            )?;
            let command = Command::UpdateSecret {
                vault,
                name,
                version: VersionId::parse_optional(&r.version)?,
                content_type: has("content_type").then(|| (!r.content_type.is_empty()).then(|| r.content_type.clone())),
                tags: has("tags").then(|| convert::tags(&r.tags)),
                enabled: has("enabled").then_some(r.enabled),
                not_before: if has("not_before") {
                    Some(convert::from_ts("not_before", r.not_before.as_ref())?)
                } else {
                    None
                },
                expires: if has("expires") { Some(convert::from_ts("expires", r.expires.as_ref())?) } else { None },
            };
            self.run(&call, command).await.map(|v| convert::secret(&v, self.suffix(), false))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn delete_secret(
        &self,
        request: Request<pb::DeleteSecretRequest>,
    ) -> Result<Response<pb::DeletedSecret>, Status> {
        let mut call = self.0.begin(&request, "SecretDelete");
        let r = request.into_inner();
        let result = async {
            let (_, vault, name) = self.open(&mut call, Action::SecretDelete, &r.vault, &r.name, WRITE).await?;
            self.run(&call, Command::DeleteSecret { vault, name })
                .await
                .map(|v| convert::deleted_secret(&v, self.suffix()))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn get_deleted_secret(
        &self,
        request: Request<pb::GetDeletedSecretRequest>,
    ) -> Result<Response<pb::DeletedSecret>, Status> {
        let mut call = self.0.begin(&request, "SecretGetDeleted");
        let r = request.into_inner();
        let result = async {
            let freshness = Some(parse_consistency(r.read_options.as_ref())?);
            let (ks, vault, name) =
                self.open(&mut call, Action::SecretReadMetadata, &r.vault, &r.name, freshness).await?;
            read::get_deleted_secret(&ks.recording_view(), &vault, &name)
                .map(|v| convert::deleted_secret(&v, self.suffix()))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_deleted_secrets(
        &self,
        request: Request<pb::ListDeletedSecretsRequest>,
    ) -> Result<Response<pb::ListDeletedSecretsResponse>, Status> {
        let mut call = self.0.begin(&request, "SecretListDeleted");
        let r = request.into_inner();
        let result = async {
            let page =
                self.list_page(&mut call, &r.vault, r.page_size, &r.page_token, r.read_options.as_ref(), true).await?;
            Ok(pb::ListDeletedSecretsResponse {
                secrets: page.items.iter().map(|v| convert::deleted_secret(v, self.suffix())).collect(),
                next_page_token: next_token(page.next),
            })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn recover_deleted_secret(
        &self,
        request: Request<pb::RecoverDeletedSecretRequest>,
    ) -> Result<Response<pb::Secret>, Status> {
        let mut call = self.0.begin(&request, "SecretRecover");
        let r = request.into_inner();
        let result = async {
            let (_, vault, name) = self.open(&mut call, Action::SecretRecover, &r.vault, &r.name, WRITE).await?;
            self.run(&call, Command::RecoverSecret { vault, name })
                .await
                .map(|v| convert::secret(&v, self.suffix(), false))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn purge_deleted_secret(
        &self,
        request: Request<pb::PurgeDeletedSecretRequest>,
    ) -> Result<Response<()>, Status> {
        let mut call = self.0.begin(&request, "SecretPurge");
        let r = request.into_inner();
        let result = async {
            let (_, vault, name) = self.open(&mut call, Action::SecretPurge, &r.vault, &r.name, WRITE).await?;
            self.0
                .engine
                .execute(&Command::PurgeSecret { vault, name }, call.client_request().as_ref())
                .await
                .map(|_| ())
        }
        .await;
        self.0.finish(call, result)
    }

    async fn backup_secret(
        &self,
        request: Request<pb::BackupSecretRequest>,
    ) -> Result<Response<pb::BackupSecretResponse>, Status> {
        let mut call = self.0.begin(&request, "SecretBackup");
        let r = request.into_inner();
        let result = async {
            let (ks, vault, name) = self.open(&mut call, Action::SecretBackup, &r.vault, &r.name, WRITE).await?;
            let (secret, versions) = read::backup_secret(&ks.recording_view(), &vault, &name)?;
            Ok(pb::BackupSecretResponse { value: ks.backup_blob(secret, versions)? })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn restore_secret(&self, request: Request<pb::RestoreSecretRequest>) -> Result<Response<pb::Secret>, Status> {
        let mut call = self.0.begin(&request, "SecretRestore");
        let r = request.into_inner();
        let result = async {
            // The name to authorize at is inside the blob. One that does not open is refused at the
            // vault's scope first, so a caller without the right learns nothing of the blob.
            let opened = self.0.engine.seal.keyspace()?.open_backup(&r.backup);
            let target = match &opened {
                Ok((name, _)) => {
                    self.0.touch(&mut call, name.as_str());
                    Target::Object { vault: &r.vault, kind: ObjectKind::Secrets, name: name.as_str() }
                }
                Err(_) => Target::Vault(&r.vault),
            };
            self.0.authorize(&mut call, Action::SecretRestore, target, WRITE).await?;
            let vault = VaultName::parse(&r.vault)?;
            let (name, versions) = opened?;
            self.run(&call, Command::RestoreSecret { vault, name, versions })
                .await
                .map(|v| convert::secret(&v, self.suffix(), false))
        }
        .await;
        self.0.finish(call, result)
    }
}
