//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into
//! JSON, for the built-in kinds clients create with protobuf. client-go's typed clients
//! (kubectl `create secret|configmap|serviceaccount|namespace|token`) send protobuf for
//! built-in types since 1.32, so a server that only read JSON would refuse them.
//!
//! The wire format is the real one: the 4-byte magic `k8s\0`, then a `runtime.Unknown`
//! message whose `raw` field holds the object. Field numbers are those of the
//! `generated.proto` files of `k8s.io/api` and `k8s.io/apimachinery`; fields this server does
//! not model are skipped. Responses stay JSON, which those clients also accept.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value, json};

use super::status::ApiError;

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

/// The protobuf media type.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bytes,
    Bool,
    Int,
    Time,
    MicroTime,
    Msg(&'static [Field]),
    MapStr,
    MapBytes,
}

#[derive(Clone, Copy)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: false,
    }
}

const fn r(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: true,
    }
}

const OWNER_REFERENCE: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "controller", Ty::Bool),
    f(7, "blockOwnerDeletion", Ty::Bool),
];

const OBJECT_META: &[Field] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(9, "deletionTimestamp", Ty::Time),
    f(10, "deletionGracePeriodSeconds", Ty::Int),
    f(11, "labels", Ty::MapStr),
    f(12, "annotations", Ty::MapStr),
    r(13, "ownerReferences", Ty::Msg(OWNER_REFERENCE)),
    r(14, "finalizers", Ty::Str),
];

const OBJECT_REFERENCE: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(2, "namespace", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "fieldPath", Ty::Str),
];

const SECRET: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapBytes),
    f(3, "type", Ty::Str),
    f(4, "stringData", Ty::MapStr),
    f(5, "immutable", Ty::Bool),
];

const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapStr),
    f(3, "binaryData", Ty::MapBytes),
    f(4, "immutable", Ty::Bool),
];

const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    r(2, "secrets", Ty::Msg(OBJECT_REFERENCE)),
    r(3, "imagePullSecrets", Ty::Msg(&[f(1, "name", Ty::Str)])),
    f(4, "automountServiceAccountToken", Ty::Bool),
];

const NAMESPACE: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(&[r(1, "finalizers", Ty::Str)])),
];

const TOKEN_REQUEST: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(
        2,
        "spec",
        Ty::Msg(&[
            r(1, "audiences", Ty::Str),
            f(
                3,
                "boundObjectRef",
                Ty::Msg(&[
                    f(1, "kind", Ty::Str),
                    f(2, "apiVersion", Ty::Str),
                    f(3, "name", Ty::Str),
                    f(4, "uid", Ty::Str),
                ]),
            ),
            f(4, "expirationSeconds", Ty::Int),
        ]),
    ),
];

const LEASE: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(
        2,
        "spec",
        Ty::Msg(&[
            f(1, "holderIdentity", Ty::Str),
            f(2, "leaseDurationSeconds", Ty::Int),
            f(3, "acquireTime", Ty::MicroTime),
            f(4, "renewTime", Ty::MicroTime),
            f(5, "leaseTransitions", Ty::Int),
            f(6, "strategy", Ty::Str),
            f(7, "preferredHolder", Ty::Str),
        ]),
    ),
];

const DELETE_OPTIONS: &[Field] = &[
    f(1, "gracePeriodSeconds", Ty::Int),
    f(
        2,
        "preconditions",
        Ty::Msg(&[f(1, "uid", Ty::Str), f(2, "resourceVersion", Ty::Str)]),
    ),
    f(3, "orphanDependents", Ty::Bool),
    f(4, "propagationPolicy", Ty::Str),
    r(5, "dryRun", Ty::Str),
];

const UNKNOWN: &[Field] = &[
    f(
        1,
        "typeMeta",
        Ty::Msg(&[f(1, "apiVersion", Ty::Str), f(2, "kind", Ty::Str)]),
    ),
    f(2, "raw", Ty::Bytes),
];

fn descriptor(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    Some(match (api_version, kind) {
        ("v1", "Secret") => SECRET,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("v1", "Namespace") => NAMESPACE,
        ("authentication.k8s.io/v1", "TokenRequest") => TOKEN_REQUEST,
        ("coordination.k8s.io/v1", "Lease") => LEASE,
        ("v1" | "meta.k8s.io/v1", "DeleteOptions") => DELETE_OPTIONS,
        _ => return None,
    })
}

fn bad(detail: &str) -> ApiError {
    ApiError::bad_request(format!("unable to decode protobuf body: {detail}"))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(bad("varint too long"))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ApiError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad("truncated field"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// A decoded field value before it is placed in JSON.
enum Raw<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Raw<'_>)>, ApiError> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Vec::new();
    while !r.done() {
        let key = r.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let raw = match wire {
            0 => Raw::Varint(r.varint()?),
            1 => {
                r.bytes(8)?;
                Raw::Fixed
            }
            2 => {
                let n = usize::try_from(r.varint()?).map_err(|_| bad("length overflow"))?;
                Raw::Len(r.bytes(n)?)
            }
            5 => {
                r.bytes(4)?;
                Raw::Fixed
            }
            _ => return Err(bad("unsupported wire type")),
        };
        out.push((num, raw));
    }
    Ok(out)
}

fn utf8(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("invalid UTF-8 in string field"))
}

fn time(b: &[u8], micros: bool) -> Result<Value, ApiError> {
    let mut secs = 0i64;
    let mut nanos = 0u32;
    for (num, raw) in fields(b)? {
        match (num, raw) {
            (1, Raw::Varint(v)) => secs = v as i64,
            (2, Raw::Varint(v)) => nanos = v as u32,
            _ => {}
        }
    }
    let t = DateTime::from_timestamp(secs, nanos).ok_or_else(|| bad("timestamp out of range"))?;
    let fmt = if micros {
        SecondsFormat::Micros
    } else {
        SecondsFormat::Secs
    };
    Ok(json!(t.to_rfc3339_opts(fmt, true)))
}

fn map_entry(b: &[u8], bytes: bool) -> Result<(String, Value), ApiError> {
    let mut key = String::new();
    let mut value = json!("");
    for (num, raw) in fields(b)? {
        match (num, raw) {
            (1, Raw::Len(k)) => key = utf8(k)?,
            (2, Raw::Len(v)) => {
                value = if bytes {
                    json!(STANDARD.encode(v))
                } else {
                    json!(utf8(v)?)
                };
            }
            _ => {}
        }
    }
    Ok((key, value))
}

fn message(buf: &[u8], desc: &[Field]) -> Result<Value, ApiError> {
    let mut out = Map::new();
    for (num, raw) in fields(buf)? {
        let Some(field) = desc.iter().find(|f| f.num == num) else {
            continue;
        };
        let value = match (field.ty, raw) {
            (Ty::Str, Raw::Len(b)) => json!(utf8(b)?),
            (Ty::Bytes, Raw::Len(b)) => json!(STANDARD.encode(b)),
            (Ty::Bool, Raw::Varint(v)) => json!(v != 0),
            (Ty::Int, Raw::Varint(v)) => json!(v as i64),
            (Ty::Time, Raw::Len(b)) => time(b, false)?,
            (Ty::MicroTime, Raw::Len(b)) => time(b, true)?,
            (Ty::Msg(d), Raw::Len(b)) => message(b, d)?,
            (Ty::MapStr | Ty::MapBytes, Raw::Len(b)) => {
                let (k, v) = map_entry(b, matches!(field.ty, Ty::MapBytes))?;
                let m = out.entry(field.name).or_insert_with(|| json!({}));
                if let Some(m) = m.as_object_mut() {
                    m.insert(k, v);
                }
                continue;
            }
            _ => {
                return Err(bad(&format!(
                    "field {} has the wrong wire type",
                    field.name
                )));
            }
        };
        if field.repeated {
            let list = out.entry(field.name).or_insert_with(|| json!([]));
            if let Some(l) = list.as_array_mut() {
                l.push(value);
            }
        } else {
            out.insert(field.name.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf body into the JSON object it encodes (with `apiVersion` and `kind`);
/// 415 for kinds this server cannot read from protobuf, 400 for malformed bodies.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing k8s protobuf prefix"))?;
    let unknown = message(rest, UNKNOWN)?;
    let api_version = unknown
        .pointer("/typeMeta/apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = unknown
        .pointer("/typeMeta/kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(desc) = descriptor(api_version, kind) else {
        return Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
        ]));
    };
    let raw = unknown
        .get("raw")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let raw = STANDARD.decode(raw).map_err(|_| bad("raw"))?;
    let mut obj = message(&raw, desc)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(num: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn map(num: u64, k: &str, v: &[u8], out: &mut Vec<u8>) {
        let mut e = Vec::new();
        len_field(1, k.as_bytes(), &mut e);
        len_field(2, v, &mut e);
        len_field(num, &e, out);
    }

    #[test]
    fn decodes_a_secret_in_the_k8s_envelope() {
        let mut meta = Vec::new();
        len_field(1, b"creds", &mut meta);
        map(11, "app", b"demo", &mut meta);
        let mut secret = Vec::new();
        len_field(1, &meta, &mut secret);
        map(2, "pw", b"\x00\xff", &mut secret);
        len_field(3, b"Opaque", &mut secret);
        varint(5 << 3, &mut secret);
        varint(1, &mut secret);
        let mut tm = Vec::new();
        len_field(1, b"v1", &mut tm);
        len_field(2, b"Secret", &mut tm);
        let mut unknown = Vec::new();
        len_field(1, &tm, &mut unknown);
        len_field(2, &secret, &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend(unknown);
        let obj = decode(&body).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "labels": {"app": "demo"}},
                "data": {"pw": "AP8="}, "type": "Opaque", "immutable": true})
        );
        assert_eq!(decode(b"k8s\0\x0a").unwrap_err().code, 400);
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
    }
}
