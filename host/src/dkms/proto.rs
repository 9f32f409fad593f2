//! Protobuf messages of the KMS instance gateway (`x-kms-apiversion: dkms-gcs-0.2`).
//!
//! Field numbers and types are those of `api.proto` in the official instance SDKs
//! (`alibabacloud-dkms-gcs`, Python and Go) and `shared/docs/alibaba-cloud-protocol.md`
//! ("KMS instance API with ClientKey"). Proto3: absent strings decode as `""`, absent bools as
//! `false`, unknown fields are skipped.
//!
//! [`GetSecretValueResponse`] holds a secret value, so its `Debug` shows only the data's length.

use std::fmt;

/// `GetSecretValueRequest` (the body of an `x-kms-apiname: GetSecretValue` call).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct GetSecretValueRequest {
    /// 1: secret name (or ARN).
    #[prost(string, tag = "1")]
    pub secret_name: String,
    /// 2: version stage; empty means `ACSCurrent`.
    #[prost(string, tag = "2")]
    pub version_stage: String,
    /// 3: version id; empty means "by stage".
    #[prost(string, tag = "3")]
    pub version_id: String,
    /// 4: also return `ExtendedConfig` of managed secrets.
    #[prost(bool, tag = "4")]
    pub fetch_extended_config: bool,
}

/// `GetSecretValueResponse`. `Debug` never shows `secret_data`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
#[prost(skip_debug)]
pub struct GetSecretValueResponse {
    /// 1: secret name.
    #[prost(string, tag = "1")]
    pub secret_name: String,
    /// 2: `Generic`, `Rds`, `Redis`, `RAMCredentials`, `ECS`, `PolarDB`.
    #[prost(string, tag = "2")]
    pub secret_type: String,
    /// 3: the value (text, or standard base64 when `secret_data_type` is `binary`).
    #[prost(string, tag = "3")]
    pub secret_data: String,
    /// 4: `text` or `binary`.
    #[prost(string, tag = "4")]
    pub secret_data_type: String,
    /// 5: stages of the returned version.
    #[prost(string, repeated, tag = "5")]
    pub version_stages: Vec<String>,
    /// 6: version id.
    #[prost(string, tag = "6")]
    pub version_id: String,
    /// 7: creation time of the version.
    #[prost(string, tag = "7")]
    pub create_time: String,
    /// 8: request id.
    #[prost(string, tag = "8")]
    pub request_id: String,
    /// 9: last rotation (managed secrets).
    #[prost(string, tag = "9")]
    pub last_rotation_date: String,
    /// 10: next rotation (managed secrets).
    #[prost(string, tag = "10")]
    pub next_rotation_date: String,
    /// 11: extended configuration (JSON text), when asked for.
    #[prost(string, tag = "11")]
    pub extended_config: String,
    /// 12: `Enabled`, `Disabled`, `Invalid`.
    #[prost(string, tag = "12")]
    pub automatic_rotation: String,
    /// 13: e.g. `604800s`.
    #[prost(string, tag = "13")]
    pub rotation_interval: String,
}

impl fmt::Debug for GetSecretValueResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetSecretValueResponse")
            .field("secret_name", &self.secret_name)
            .field("secret_type", &self.secret_type)
            .field(
                "secret_data",
                &format_args!("<redacted, {} bytes>", self.secret_data.len()),
            )
            .field("secret_data_type", &self.secret_data_type)
            .field("version_stages", &self.version_stages)
            .field("version_id", &self.version_id)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// `Error`: the body of every non-2xx gateway answer.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Error {
    /// 1: HTTP status, repeated in the body.
    #[prost(int32, tag = "1")]
    pub status_code: i32,
    /// 2: error code, e.g. `Forbidden.ResourceNotFound`, `RequestTimeTooSkewed`.
    #[prost(string, tag = "2")]
    pub error_code: String,
    /// 3: human-readable message.
    #[prost(string, tag = "3")]
    pub error_message: String,
    /// 4: request id.
    #[prost(string, tag = "4")]
    pub request_id: String,
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn the_documented_request_example_encodes_byte_for_byte() {
        let body = GetSecretValueRequest {
            secret_name: "secret001".into(),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(hex::encode(&body), "0a09736563726574303031");
        let full = GetSecretValueRequest {
            secret_name: "a".into(),
            version_stage: "ACSPrevious".into(),
            version_id: "v2".into(),
            fetch_extended_config: true,
        };
        let bytes = full.encode_to_vec();
        assert_eq!(
            hex::encode(&bytes),
            "0a0161120b41435350726576696f75731a0276322001"
        );
        assert_eq!(GetSecretValueRequest::decode(&bytes[..]).unwrap(), full);
    }

    #[test]
    fn responses_round_trip_and_debug_hides_the_value() {
        let r = GetSecretValueResponse {
            secret_name: "db".into(),
            secret_data: "hunter2-marker".into(),
            secret_data_type: "text".into(),
            version_stages: vec!["ACSCurrent".into(), "Custom".into()],
            version_id: "v1".into(),
            ..Default::default()
        };
        let decoded = GetSecretValueResponse::decode(&r.encode_to_vec()[..]).unwrap();
        assert_eq!(decoded, r);
        let dbg = format!("{decoded:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("<redacted, 14 bytes>"), "{dbg}");
    }

    #[test]
    fn error_bodies_decode_and_garbage_is_refused() {
        let e = Error {
            status_code: 404,
            error_code: "Forbidden.ResourceNotFound".into(),
            error_message: "The resource is not found.".into(),
            request_id: "r-1".into(),
        };
        assert_eq!(Error::decode(&e.encode_to_vec()[..]).unwrap(), e);
        assert!(Error::decode(&b"\x0a\xff\xff"[..]).is_err());
    }
}
