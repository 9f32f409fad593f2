//! [`KmsClient`]: the four secret actions over [`RpcClient`].

use std::sync::Arc;

use base64::Engine as _;
use zeroize::Zeroizing;

use super::error::KmsError;
use super::model::{
    DescribeSecretWire, GetSecretValueRequest, GetSecretValueWire, KMS_API_VERSION,
    ListSecretVersionIdsWire, ListSecretsPage, ListSecretsRequest, ListSecretsWire, SecretDataType,
    SecretMetadata, SecretSummary, SecretType, SecretValue, SecretVersion,
};
use crate::alibaba::response::required;
use crate::alibaba::{Endpoint, RpcClient, RpcRequest, RpcResponse, Service};
use crate::credentials::CredentialsProvider;
use crate::value::SecretBytes;

/// Largest `PageSize` KMS accepts.
const MAX_PAGE_SIZE: u32 = 100;
/// Paging stops with [`KmsError::PagingLimit`] after this many pages (1,000,000 secrets).
const MAX_PAGES: u64 = 10_000;

/// A KMS client bound to one endpoint and one credentials provider. Cheap to clone.
#[derive(Clone, Debug)]
pub struct KmsClient {
    rpc: RpcClient,
    endpoint: Endpoint,
    credentials: Arc<dyn CredentialsProvider>,
}

impl KmsClient {
    /// A client calling `endpoint` (resolved for [`Service::Kms`]) with `credentials`.
    ///
    /// # Errors
    /// [`KmsError::WrongService`] when the endpoint was resolved for another service.
    pub fn new(
        rpc: RpcClient,
        endpoint: Endpoint,
        credentials: Arc<dyn CredentialsProvider>,
    ) -> Result<Self, KmsError> {
        if endpoint.service() != Service::Kms {
            return Err(KmsError::WrongService {
                endpoint: endpoint.to_string(),
                service: endpoint.service(),
            });
        }
        Ok(Self {
            rpc,
            endpoint,
            credentials,
        })
    }

    /// The endpoint this client calls.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn call(&self, request: RpcRequest) -> Result<RpcResponse, KmsError> {
        let creds =
            self.credentials
                .credentials()
                .await
                .map_err(|source| KmsError::Credentials {
                    provider: self.credentials.name(),
                    source,
                })?;
        Ok(self
            .rpc
            .call(&self.endpoint, creds.signing(), &request)
            .await?)
    }

    /// `GetSecretValue`: one version of a secret with its value.
    ///
    /// Binary secrets are base64-decoded; text secrets are returned as their UTF-8 bytes.
    ///
    /// # Errors
    /// [`KmsError`]: e.g. code `Forbidden.ResourceNotFound` (no such secret/version/stage),
    /// `Forbidden.NoPermission`, `Rejected.Throttling` after retries; a missing `SecretData`,
    /// `SecretName` or `VersionId`; [`KmsError::InvalidBinaryData`].
    pub async fn get_secret_value(
        &self,
        request: &GetSecretValueRequest,
    ) -> Result<SecretValue, KmsError> {
        let rpc = build_get_secret_value(request)?;
        let response = self.call(rpc).await?;
        parse_get_secret_value(&response)
    }

    /// `ListSecrets` for one page (`page_number` is 1-based).
    ///
    /// # Errors
    /// [`KmsError`]; [`KmsError::InvalidRequest`] for a page size outside 1–100.
    pub async fn list_secrets_page(
        &self,
        request: &ListSecretsRequest,
        page_number: u64,
    ) -> Result<ListSecretsPage, KmsError> {
        let rpc = build_list_secrets(request, page_number)?;
        let response = self.call(rpc).await?;
        parse_list_secrets(&response)
    }

    /// `ListSecrets` over all pages, in the order KMS returns them.
    ///
    /// Stops when `TotalCount` secrets were collected or a page comes back empty; stops with
    /// an error when the server does not advance (see [`KmsError::PagingInconsistent`]).
    ///
    /// # Errors
    /// As [`list_secrets_page`](Self::list_secrets_page); [`KmsError::PagingLimit`],
    /// [`KmsError::PagingInconsistent`].
    pub async fn list_secrets(
        &self,
        request: &ListSecretsRequest,
    ) -> Result<Vec<SecretSummary>, KmsError> {
        let mut all = Vec::new();
        let mut guard = PageGuard::new("ListSecrets", u64::from(request.page_size));
        for page_number in 1..=MAX_PAGES {
            let page = self.list_secrets_page(request, page_number).await?;
            guard.check(
                page_number,
                (page.page_number != 0).then_some(page.page_number),
                page.secrets.iter().map(|s| s.secret_name.as_str()),
            )?;
            let got = page.secrets.len();
            all.extend(page.secrets);
            if got == 0 || all.len() as u64 >= page.total_count {
                return Ok(all);
            }
        }
        Err(KmsError::PagingLimit {
            action: "ListSecrets",
            pages: MAX_PAGES,
        })
    }

    /// `DescribeSecret`: metadata of one secret (name or ARN).
    ///
    /// # Errors
    /// [`KmsError`], e.g. `Forbidden.ResourceNotFound`.
    pub async fn describe_secret(
        &self,
        secret_name: &str,
        fetch_tags: bool,
    ) -> Result<SecretMetadata, KmsError> {
        check_name(secret_name)?;
        let rpc = RpcRequest::new(KMS_API_VERSION, "DescribeSecret")
            .param("SecretName", secret_name)
            .param("FetchTags", bool_param(fetch_tags));
        let response = self.call(rpc).await?;
        parse_describe_secret(&response)
    }

    /// `ListSecretVersionIds` over all pages. Without `include_deprecated`, versions that carry
    /// no stage are left out (by KMS).
    ///
    /// # Errors
    /// [`KmsError`], e.g. `Forbidden.ResourceNotFound`; [`KmsError::PagingLimit`].
    pub async fn list_secret_version_ids(
        &self,
        secret_name: &str,
        include_deprecated: bool,
    ) -> Result<Vec<SecretVersion>, KmsError> {
        check_name(secret_name)?;
        let mut all = Vec::new();
        let mut guard = PageGuard::new("ListSecretVersionIds", u64::from(MAX_PAGE_SIZE));
        for page_number in 1..=MAX_PAGES {
            let rpc = RpcRequest::new(KMS_API_VERSION, "ListSecretVersionIds")
                .param("SecretName", secret_name)
                .param("IncludeDeprecated", bool_param(include_deprecated))
                .param("PageNumber", page_number.to_string())
                .param("PageSize", MAX_PAGE_SIZE.to_string());
            let response = self.call(rpc).await?;
            let (total, echoed, versions) = parse_list_secret_version_ids(&response)?;
            guard.check(
                page_number,
                echoed,
                versions.iter().map(|v| v.version_id.as_str()),
            )?;
            let got = versions.len();
            all.extend(versions);
            if got == 0 || all.len() as u64 >= total {
                return Ok(all);
            }
        }
        Err(KmsError::PagingLimit {
            action: "ListSecretVersionIds",
            pages: MAX_PAGES,
        })
    }
}

/// Checks each page of a listing against the one before, so that a server that does not
/// advance (ignores `PageNumber`, answers the same page again) stops the listing at once instead
/// of after [`MAX_PAGES`] requests and as many copies of its items in memory.
struct PageGuard {
    action: &'static str,
    page_size: u64,
    /// The item names of the previous page.
    previous: Vec<String>,
}

impl PageGuard {
    fn new(action: &'static str, page_size: u64) -> Self {
        Self {
            action,
            page_size,
            previous: Vec::new(),
        }
    }

    /// `echoed`: the `PageNumber` of the answer, when it carries one.
    fn check<'a>(
        &mut self,
        requested: u64,
        echoed: Option<u64>,
        names: impl Iterator<Item = &'a str>,
    ) -> Result<(), KmsError> {
        let names: Vec<String> = names.map(str::to_owned).collect();
        let problem = if let Some(echoed) = echoed.filter(|e| *e != requested) {
            Some(format!("the server answered page {echoed}"))
        } else if names.len() as u64 > self.page_size {
            Some(format!(
                "the server answered {} items, more than the page size {}",
                names.len(),
                self.page_size
            ))
        } else if !names.is_empty() && names == self.previous {
            Some(format!(
                "the server answered the same {} items as page {}",
                names.len(),
                requested - 1
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(KmsError::PagingInconsistent {
                action: self.action,
                page: requested,
                problem,
            });
        }
        self.previous = names;
        Ok(())
    }
}

fn bool_param(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn check_name(name: &str) -> Result<(), KmsError> {
    if name.is_empty() {
        return Err(KmsError::InvalidRequest {
            field: "SecretName",
            reason: "is empty",
        });
    }
    Ok(())
}

/// The RPC request for `GetSecretValue`.
pub(crate) fn build_get_secret_value(r: &GetSecretValueRequest) -> Result<RpcRequest, KmsError> {
    check_name(&r.secret_name)?;
    let mut rpc = RpcRequest::new(KMS_API_VERSION, "GetSecretValue")
        .param("SecretName", r.secret_name.clone())
        .opt_param("VersionStage", r.version_stage.clone())
        .opt_param("VersionId", r.version_id.clone());
    if r.fetch_extended_config {
        rpc = rpc.param("FetchExtendedConfig", "true");
    }
    Ok(rpc)
}

/// The RPC request for one `ListSecrets` page.
pub(crate) fn build_list_secrets(
    r: &ListSecretsRequest,
    page_number: u64,
) -> Result<RpcRequest, KmsError> {
    if !(1..=MAX_PAGE_SIZE).contains(&r.page_size) {
        return Err(KmsError::InvalidRequest {
            field: "PageSize",
            reason: "must be 1 to 100",
        });
    }
    if page_number == 0 {
        return Err(KmsError::InvalidRequest {
            field: "PageNumber",
            reason: "starts at 1",
        });
    }
    let mut rpc = RpcRequest::new(KMS_API_VERSION, "ListSecrets")
        .param("FetchTags", bool_param(r.fetch_tags))
        .param("PageNumber", page_number.to_string())
        .param("PageSize", r.page_size.to_string());
    if !r.filters.is_empty() {
        let filters = serde_json::to_string(&r.filters).map_err(|_| KmsError::InvalidRequest {
            field: "Filters",
            reason: "not serialisable",
        })?;
        rpc = rpc.param("Filters", filters);
    }
    Ok(rpc)
}

fn missing(response: &RpcResponse, field: &str) -> KmsError {
    KmsError::Rpc(
        response.unexpected(crate::alibaba::BodyProblem::MissingField {
            field: field.to_owned(),
        }),
    )
}

/// Turns a `GetSecretValue` response into a [`SecretValue`].
pub(crate) fn parse_get_secret_value(response: &RpcResponse) -> Result<SecretValue, KmsError> {
    let wire: GetSecretValueWire = response.json()?;
    let field = |p| KmsError::Rpc(response.unexpected(p));
    let secret_name = required(wire.secret_name, "SecretName").map_err(field)?;
    let data = required(wire.secret_data, "SecretData").map_err(field)?;
    let version_id = required(wire.version_id, "VersionId").map_err(field)?;
    let data_type = match wire.secret_data_type.as_deref() {
        None | Some("text") => SecretDataType::Text,
        Some("binary") => SecretDataType::Binary,
        Some(other) => {
            return Err(KmsError::UnknownDataType {
                secret_name,
                data_type: other.to_owned(),
            });
        }
    };
    let bytes = match data_type {
        SecretDataType::Text => SecretBytes::new(data.expose().as_bytes().to_vec()),
        SecretDataType::Binary => {
            let mut buf = Zeroizing::new(Vec::new());
            base64::engine::general_purpose::STANDARD
                .decode_vec(data.expose().trim().as_bytes(), &mut buf)
                .map_err(|_| KmsError::InvalidBinaryData {
                    secret_name: secret_name.clone(),
                    version_id: version_id.clone(),
                })?;
            SecretBytes::new(std::mem::take(&mut *buf))
        }
    };
    Ok(SecretValue {
        request_id: wire.request_id.or_else(|| response.request_id.clone()),
        secret_name,
        secret_type: wire
            .secret_type
            .as_deref()
            .map_or(SecretType::Generic, SecretType::from_wire),
        data_type,
        data: bytes,
        version_id,
        version_stages: wire
            .version_stages
            .and_then(|s| s.version_stage)
            .unwrap_or_default(),
        create_time: wire.create_time,
        extended_config: wire.extended_config,
        automatic_rotation: wire.automatic_rotation,
        rotation_interval: wire.rotation_interval,
        last_rotation_date: wire.last_rotation_date,
        next_rotation_date: wire.next_rotation_date,
    })
}

/// Turns a `ListSecrets` response into a page.
pub(crate) fn parse_list_secrets(response: &RpcResponse) -> Result<ListSecretsPage, KmsError> {
    let wire: ListSecretsWire = response.json()?;
    let total_count = wire
        .total_count
        .ok_or_else(|| missing(response, "TotalCount"))?;
    let list = wire.secret_list.and_then(|l| l.secret).unwrap_or_default();
    let mut secrets = Vec::with_capacity(list.len());
    for (i, s) in list.into_iter().enumerate() {
        let secret_name = s
            .secret_name
            .ok_or_else(|| missing(response, &format!("SecretList.Secret[{i}].SecretName")))?;
        secrets.push(SecretSummary {
            secret_name,
            secret_type: s.secret_type.as_deref().map(SecretType::from_wire),
            create_time: s.create_time,
            update_time: s.update_time,
            planned_delete_time: s.planned_delete_time,
            owing_service: s.owing_service,
            tags: s.tags.and_then(|t| t.tag).unwrap_or_default(),
        });
    }
    Ok(ListSecretsPage {
        request_id: wire.request_id.or_else(|| response.request_id.clone()),
        page_number: wire.page_number.unwrap_or(0),
        page_size: wire.page_size.unwrap_or(0),
        total_count,
        secrets,
    })
}

/// Turns a `DescribeSecret` response into [`SecretMetadata`].
pub(crate) fn parse_describe_secret(response: &RpcResponse) -> Result<SecretMetadata, KmsError> {
    let w: DescribeSecretWire = response.json()?;
    let secret_name = w
        .secret_name
        .ok_or_else(|| missing(response, "SecretName"))?;
    Ok(SecretMetadata {
        request_id: w.request_id.or_else(|| response.request_id.clone()),
        secret_name,
        arn: w.arn,
        secret_type: w.secret_type.as_deref().map(SecretType::from_wire),
        description: w.description,
        create_time: w.create_time,
        update_time: w.update_time,
        planned_delete_time: w.planned_delete_time,
        encryption_key_id: w.encryption_key_id,
        dkms_instance_id: w.dkms_instance_id,
        owing_service: w.owing_service,
        automatic_rotation: w.automatic_rotation,
        rotation_interval: w.rotation_interval,
        last_rotation_date: w.last_rotation_date,
        next_rotation_date: w.next_rotation_date,
        extended_config: w.extended_config,
        tags: w.tags.and_then(|t| t.tag).unwrap_or_default(),
    })
}

/// Turns a `ListSecretVersionIds` response into (`TotalCount`, `PageNumber` when present, the
/// versions).
pub(crate) fn parse_list_secret_version_ids(
    response: &RpcResponse,
) -> Result<(u64, Option<u64>, Vec<SecretVersion>), KmsError> {
    let w: ListSecretVersionIdsWire = response.json()?;
    let total = w
        .total_count
        .ok_or_else(|| missing(response, "TotalCount"))?;
    let _ = w.request_id;
    let list = w.version_ids.and_then(|v| v.version_id).unwrap_or_default();
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.into_iter().enumerate() {
        let version_id = v
            .version_id
            .ok_or_else(|| missing(response, &format!("VersionIds.VersionId[{i}].VersionId")))?;
        out.push(SecretVersion {
            version_id,
            create_time: v.create_time,
            version_stages: v
                .version_stages
                .and_then(|s| s.version_stage)
                .unwrap_or_default(),
        });
    }
    Ok((total, w.page_number, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alibaba::{BodyProblem, RpcError};
    use crate::kms::SecretFilter;

    fn ok(body: &str) -> RpcResponse {
        RpcResponse::from_parts(
            "GetSecretValue",
            "kms.test",
            200,
            Some("hdr-req".into()),
            Some("application/json".into()),
            body.as_bytes().to_vec(),
        )
    }

    fn problem(err: KmsError) -> BodyProblem {
        match err {
            KmsError::Rpc(RpcError::UnexpectedResponse {
                problem,
                http_status,
                ..
            }) => {
                assert_eq!(http_status, 200);
                problem
            }
            other => panic!("expected an unexpected-response error, got {other:?}"),
        }
    }

    #[test]
    fn get_secret_value_request_carries_every_parameter() {
        let r = GetSecretValueRequest::new("acs:kms:cn-hangzhou:123:secret/db")
            .version_stage("ACSPrevious")
            .version_id("v2")
            .fetch_extended_config(true);
        let rpc = build_get_secret_value(&r).unwrap();
        assert_eq!(rpc.action, "GetSecretValue");
        assert_eq!(rpc.version, "2016-01-20");
        let params: Vec<(&str, &str)> = rpc
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            params,
            vec![
                ("FetchExtendedConfig", "true"),
                ("SecretName", "acs:kms:cn-hangzhou:123:secret/db"),
                ("VersionId", "v2"),
                ("VersionStage", "ACSPrevious"),
            ]
        );
        let plain = build_get_secret_value(&GetSecretValueRequest::new("db")).unwrap();
        assert_eq!(plain.params.len(), 1);
        assert!(matches!(
            build_get_secret_value(&GetSecretValueRequest::new("")),
            Err(KmsError::InvalidRequest {
                field: "SecretName",
                ..
            })
        ));
    }

    #[test]
    fn list_secrets_request_serialises_filters_as_json() {
        let r = ListSecretsRequest {
            filters: vec![
                SecretFilter::new("TagKey", ["env"]),
                SecretFilter::new("TagValue", ["prod", "staging"]),
            ],
            fetch_tags: true,
            page_size: 50,
        };
        let rpc = build_list_secrets(&r, 3).unwrap();
        assert_eq!(
            rpc.params["Filters"],
            r#"[{"Key":"TagKey","Values":["env"]},{"Key":"TagValue","Values":["prod","staging"]}]"#
        );
        assert_eq!(rpc.params["FetchTags"], "true");
        assert_eq!(rpc.params["PageNumber"], "3");
        assert_eq!(rpc.params["PageSize"], "50");
        let no_filters = build_list_secrets(&ListSecretsRequest::default(), 1).unwrap();
        assert!(!no_filters.params.contains_key("Filters"));
        assert!(
            build_list_secrets(
                &ListSecretsRequest {
                    page_size: 101,
                    ..Default::default()
                },
                1
            )
            .is_err()
        );
        assert!(
            build_list_secrets(
                &ListSecretsRequest {
                    page_size: 0,
                    ..Default::default()
                },
                1
            )
            .is_err()
        );
        assert!(build_list_secrets(&ListSecretsRequest::default(), 0).is_err());
    }

    #[test]
    fn text_secret_values_parse_with_unknown_fields_ignored() {
        let v = parse_get_secret_value(&ok(r#"{"RequestId":"6a3e9c36-1150-4881-84d3-eb8672fcafad","SecretName":"secret001","SecretType":"Generic",
 "SecretData":"testdata1","SecretDataType":"text","VersionId":"v1",
 "VersionStages":{"VersionStage":["ACSCurrent"]},"CreateTime":"2024-02-21T15:39:26Z","SomethingNew":{"a":1}}"#)).unwrap();
        assert_eq!(
            v.request_id.as_deref(),
            Some("6a3e9c36-1150-4881-84d3-eb8672fcafad")
        );
        assert_eq!(v.secret_name, "secret001");
        assert_eq!(v.secret_type, SecretType::Generic);
        assert_eq!(v.data_type, SecretDataType::Text);
        assert_eq!(v.data.expose(), b"testdata1");
        assert_eq!(v.version_id, "v1");
        assert_eq!(v.version_stages, vec!["ACSCurrent"]);
        assert_eq!(v.create_time.as_deref(), Some("2024-02-21T15:39:26Z"));
        assert_eq!(v.extended_config, None);
        assert!(!format!("{v:?}").contains("testdata1"));
    }

    #[test]
    fn binary_secret_values_are_base64_decoded() {
        let v = parse_get_secret_value(&ok(
            r#"{"SecretName":"bin","SecretData":"AAEC/w==","SecretDataType":"binary","VersionId":"v1"}"#,
        ))
        .unwrap();
        assert_eq!(v.data_type, SecretDataType::Binary);
        assert_eq!(v.data.expose(), &[0u8, 1, 2, 255]);
        assert_eq!(v.request_id.as_deref(), Some("hdr-req"));
    }

    #[test]
    fn invalid_base64_is_a_typed_error_without_the_data() {
        let err = parse_get_secret_value(&ok(
            r#"{"SecretName":"bin","SecretData":"hunter2-marker!!","SecretDataType":"binary","VersionId":"v1"}"#,
        ))
        .unwrap_err();
        assert!(matches!(err, KmsError::InvalidBinaryData { .. }));
        let msg = format!("{err} {err:?}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert_eq!(err.metric_label(), "invalid_binary_data");
    }

    #[test]
    fn managed_secrets_keep_rotation_fields_and_extended_config() {
        let v = parse_get_secret_value(&ok(r#"{"SecretName":"rds","SecretType":"Rds","SecretData":"{\"AccountName\":\"app\",\"AccountPassword\":\"pw\"}",
            "SecretDataType":"text","VersionId":"v3","VersionStages":{"VersionStage":["ACSCurrent","Custom"]},
            "ExtendedConfig":"{\"SecretSubType\":\"SingleUser\",\"DBInstanceId\":\"rm-1\"}","AutomaticRotation":"Enabled",
            "RotationInterval":"604800s","LastRotationDate":"2023-07-05T08:22:03Z","NextRotationDate":"2024-07-06T18:22:03Z"}"#)).unwrap();
        assert_eq!(v.secret_type, SecretType::Rds);
        assert_eq!(v.version_stages, vec!["ACSCurrent", "Custom"]);
        assert_eq!(
            v.extended_config.as_deref(),
            Some(r#"{"SecretSubType":"SingleUser","DBInstanceId":"rm-1"}"#)
        );
        assert_eq!(v.automatic_rotation.as_deref(), Some("Enabled"));
        assert_eq!(v.rotation_interval.as_deref(), Some("604800s"));
        assert_eq!(
            v.last_rotation_date.as_deref(),
            Some("2023-07-05T08:22:03Z")
        );
        assert_eq!(
            v.next_rotation_date.as_deref(),
            Some("2024-07-06T18:22:03Z")
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        let err =
            parse_get_secret_value(&ok(r#"{"SecretName":"a","VersionId":"v1"}"#)).unwrap_err();
        assert_eq!(
            problem(err),
            BodyProblem::MissingField {
                field: "SecretData".into()
            }
        );
        let err =
            parse_get_secret_value(&ok(r#"{"SecretName":"a","SecretData":"x"}"#)).unwrap_err();
        assert_eq!(
            problem(err),
            BodyProblem::MissingField {
                field: "VersionId".into()
            }
        );
        let err =
            parse_list_secrets(&ok(r#"{"PageNumber":1,"SecretList":{"Secret":[]}}"#)).unwrap_err();
        assert_eq!(
            problem(err),
            BodyProblem::MissingField {
                field: "TotalCount".into()
            }
        );
        let err = parse_list_secrets(&ok(
            r#"{"TotalCount":1,"SecretList":{"Secret":[{"CreateTime":"x"}]}}"#,
        ))
        .unwrap_err();
        assert_eq!(
            problem(err),
            BodyProblem::MissingField {
                field: "SecretList.Secret[0].SecretName".into()
            }
        );
    }

    #[test]
    fn non_json_html_and_truncated_success_bodies_are_clear_errors() {
        let err =
            parse_get_secret_value(&ok("<html><body>502 Bad Gateway</body></html>")).unwrap_err();
        assert_eq!(problem(err), BodyProblem::Html);
        let err = parse_get_secret_value(&ok(r#"{"SecretName":"a","SecretData":"hunter2-mark"#))
            .unwrap_err();
        let msg = err.to_string();
        assert_eq!(problem(err), BodyProblem::Truncated);
        assert!(!msg.contains("hunter2"));
        let err = parse_get_secret_value(&ok("plain words")).unwrap_err();
        assert!(matches!(problem(err), BodyProblem::NotJson { .. }));
        let err =
            parse_get_secret_value(&ok(r#"{"SecretName":"a","SecretData":42,"VersionId":"v"}"#))
                .unwrap_err();
        assert_eq!(
            problem(err),
            BodyProblem::InvalidField {
                field: "SecretData".into()
            }
        );
        let err = parse_get_secret_value(&ok(
            r#"{"SecretName":"a","SecretData":"x","SecretDataType":"hex","VersionId":"v"}"#,
        ))
        .unwrap_err();
        assert!(matches!(err, KmsError::UnknownDataType { .. }));
    }

    #[test]
    fn list_secrets_pages_parse_tags_and_counts() {
        let page = parse_list_secrets(&ok(r#"{"PageNumber":2,"PageSize":"1","TotalCount":3,"RequestId":"r",
            "SecretList":{"Secret":[{"SecretName":"a","SecretType":"Generic","CreateTime":"2024-01-01T00:00:00Z",
            "UpdateTime":"2024-01-02T00:00:00Z","Tags":{"Tag":[{"TagKey":"env","TagValue":"prod"}]}}]}}"#)).unwrap();
        assert_eq!(
            (page.page_number, page.page_size, page.total_count),
            (2, 1, 3)
        );
        assert_eq!(page.secrets.len(), 1);
        assert_eq!(page.secrets[0].secret_name, "a");
        assert_eq!(
            page.secrets[0].tags,
            vec![crate::kms::Tag {
                key: "env".into(),
                value: "prod".into()
            }]
        );
        let empty = parse_list_secrets(&ok(r#"{"TotalCount":0,"SecretList":{}}"#)).unwrap();
        assert!(empty.secrets.is_empty());
    }

    #[test]
    fn describe_secret_and_version_ids_parse() {
        let m = parse_describe_secret(&ok(r#"{"SecretName":"db","Arn":"acs:kms:cn-hangzhou:1:secret/db","SecretType":"Rds",
            "Description":"d","ExtendedConfig":{"DBInstanceId":"rm-1"},"Tags":{"Tag":[{"TagKey":"k","TagValue":"v"}]}}"#)).unwrap();
        assert_eq!(m.arn.as_deref(), Some("acs:kms:cn-hangzhou:1:secret/db"));
        assert_eq!(m.secret_type, Some(SecretType::Rds));
        assert_eq!(
            m.extended_config.as_deref(),
            Some(r#"{"DBInstanceId":"rm-1"}"#)
        );
        assert_eq!(m.tags.len(), 1);
        let (total, page, versions) = parse_list_secret_version_ids(&ok(r#"{"TotalCount":2,"PageNumber":1,"VersionIds":{"VersionId":[
            {"VersionId":"v1","CreateTime":"t1","VersionStages":{"VersionStage":["ACSPrevious"]}},
            {"VersionId":"v2","CreateTime":"t2","VersionStages":{"VersionStage":["ACSCurrent"]}}]}}"#)).unwrap();
        assert_eq!((total, page), (2, Some(1)));
        assert_eq!(versions[1].version_id, "v2");
        assert_eq!(versions[0].version_stages, vec!["ACSPrevious"]);
    }
}
