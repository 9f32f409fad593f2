//! Endpoint resolution and the SSRF policy that every Alibaba Cloud call goes through.
//!
//! An [`Endpoint`] can only be made by [`EndpointPolicy::resolve`], so holding one means the
//! policy approved it. The rules (see `shared/docs/security.md`, "Tenant points `kmsEndpoint` at an
//! internal service"):
//!
//! 1. A region resolves to the documented public or VPC host of the service:
//!    `kms.<region>.aliyuncs.com`, `kms-vpc.<region>.aliyuncs.com`, `sts.<region>.aliyuncs.com`,
//!    `oos.<region>.aliyuncs.com`, ... (`shared/docs/alibaba-cloud-protocol.md`).
//! 2. A KMS instance id `kst-…` resolves to `<kst-id>.cryptoservice.kms.aliyuncs.com`.
//! 3. A URL (from a user-controlled field such as `kmsEndpoint`) is accepted when
//!    * its host is one of the hosts above for the same service, over `https`; or
//!    * its host is a loopback address (`127.0.0.0/8`, `::1`, `localhost`) and loopback is
//!      allowed, over `http` or `https`; or
//!    * its origin (scheme, host, port) equals a URL the administrator configured
//!      ([`EndpointPolicy::trust_url`], e.g. from a controller flag); those must still be
//!      `https` unless loopback.
//!
//! Loopback is allowed by [`EndpointPolicy::default`], which is meant for local tools
//! (`kmsync render`, `kmsync kms`) where the person running them writes every input. The
//! controller builds its policy with [`EndpointPolicy::allow_loopback`]`(false)`: there a
//! tenant's `kmsEndpoint` of `http://127.0.0.1:<port>` would reach the controller pod's own
//! ports and sidecars, so only an administrator can allow such a URL, by listing its exact
//! origin in `--allowed-endpoints`.
//!
//! Plain `http` is never accepted for a non-loopback host. URLs with user info, a path other
//! than `/`, a query or a fragment are refused, so nothing can smuggle a different target.
//! Redirects are not followed by [`super::RpcClient`], and it ignores proxy environment variables.

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// Which Alibaba Cloud product an endpoint serves; decides the allowed host names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// KMS Secrets Manager (API version 2016-01-20).
    Kms,
    /// Security Token Service (API version 2015-04-01).
    Sts,
    /// CloudOps Orchestration Service (API version 2019-06-01).
    Oos,
}

impl Service {
    /// Host label prefix: `kms`, `sts`, `oos`.
    pub fn product(self) -> &'static str {
        match self {
            Self::Kms => "kms",
            Self::Sts => "sts",
            Self::Oos => "oos",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kms => "KMS",
            Self::Sts => "STS",
            Self::Oos => "OOS",
        })
    }
}

/// Public internet endpoint or the VPC-internal one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Network {
    /// `<product>.<region>.aliyuncs.com`
    #[default]
    Public,
    /// `<product>-vpc.<region>.aliyuncs.com`
    Vpc,
}

/// Where an endpoint comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointSource {
    /// A region id such as `cn-hangzhou` and the network to reach it by.
    Region {
        /// Region id: lowercase letters, digits and `-`, e.g. `cn-hangzhou`, `ap-southeast-1`.
        region: String,
        /// Public or VPC endpoint.
        network: Network,
    },
    /// A KMS instance (`kst-…`), reached at `<id>.cryptoservice.kms.aliyuncs.com` (KMS only).
    KmsInstance {
        /// Instance id, e.g. `kst-hzz62ee817bvyyr5x8gvq`.
        instance_id: String,
    },
    /// A URL or bare host name as written by a user or an administrator
    /// (`kms.cn-hangzhou.aliyuncs.com`, `https://...`, `http://127.0.0.1:8443`).
    Url(String),
}

/// Why an endpoint was refused. Messages name the offending input (endpoints are not secret).
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The text is not a URL.
    #[error("endpoint {input:?} is not a valid URL")]
    InvalidUrl {
        /// The endpoint as given.
        input: String,
        /// Parser error.
        #[source]
        source: url::ParseError,
    },
    /// Scheme other than `http`/`https`.
    #[error(
        "endpoint {input:?} uses scheme {scheme:?}; only https (or http to loopback) is allowed"
    )]
    UnsupportedScheme {
        /// The endpoint as given.
        input: String,
        /// The scheme found.
        scheme: String,
    },
    /// `http://` to something that is not loopback.
    #[error("endpoint {input:?} uses plain http, which is only allowed for loopback addresses")]
    PlainHttpNotLoopback {
        /// The endpoint as given.
        input: String,
    },
    /// User info, a path, a query or a fragment.
    #[error("endpoint {input:?} must be a bare origin (no user info, path, query or fragment)")]
    NotAnOrigin {
        /// The endpoint as given.
        input: String,
    },
    /// A host that is neither an Alibaba Cloud host of the service nor trusted by the admin.
    #[error(
        "endpoint {input:?} is not an Alibaba Cloud {service} endpoint; an administrator can allow it with --allowed-endpoints"
    )]
    HostNotAllowed {
        /// The endpoint as given.
        input: String,
        /// Host that was refused.
        host: String,
        /// The service it was meant for.
        service: Service,
    },
    /// A loopback address while loopback is disabled (the controller): it would reach the
    /// controller pod's own ports.
    #[error(
        "endpoint {input:?} is not an Alibaba Cloud {service} endpoint (loopback addresses are refused); an administrator can allow it with --allowed-endpoints"
    )]
    LoopbackDisabled {
        /// The endpoint as given.
        input: String,
        /// The service it was meant for.
        service: Service,
    },
    /// A region id with characters outside `[a-z0-9-]`.
    #[error("region {region:?} is not a valid region id")]
    InvalidRegion {
        /// The region as given.
        region: String,
    },
    /// A KMS instance id that does not look like `kst-…`.
    #[error(
        "KMS instance id {instance_id:?} is not valid (expected kst-<lowercase letters and digits>)"
    )]
    InvalidInstanceId {
        /// The id as given.
        instance_id: String,
    },
    /// KMS instance endpoints requested for another service.
    #[error("a KMS instance endpoint was requested for {service}")]
    InstanceForOtherService {
        /// The service asked for.
        service: Service,
    },
}

/// An approved endpoint: scheme, host, optional port. Made only by [`EndpointPolicy::resolve`].
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: Url,
    service: Service,
}

impl Endpoint {
    /// The origin with path `/`, e.g. `https://kms.cn-hangzhou.aliyuncs.com/`.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The `Host` header value (`host` or `host:port` when the port is not the scheme default);
    /// V3 signs it.
    pub fn host_header(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The service this endpoint was approved for.
    pub fn service(&self) -> Service {
        self.service
    }

    /// True for `http://` endpoints (loopback only).
    pub fn is_plain_http(&self) -> bool {
        self.url.scheme() == "http"
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({} {})", self.service, self.url)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// The SSRF policy: which endpoints user-controlled fields may name. See the module docs.
///
/// Build one per installation from flags: `EndpointPolicy::default()` allows Alibaba Cloud
/// hosts and loopback (local tools); [`trust_url`](Self::trust_url) adds administrator URLs;
/// [`allow_loopback`](Self::allow_loopback)`(false)` refuses loopback unless trusted (the
/// controller).
#[derive(Clone, Debug)]
pub struct EndpointPolicy {
    trusted: Vec<Url>,
    allow_loopback: bool,
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        Self {
            trusted: Vec::new(),
            allow_loopback: true,
        }
    }
}

impl EndpointPolicy {
    /// Alibaba Cloud hosts and loopback allowed; no extra trusted URLs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether user-supplied loopback URLs (`http://127.0.0.1:8443`) are accepted.
    pub fn allow_loopback(mut self, allow: bool) -> Self {
        self.allow_loopback = allow;
        self
    }

    /// Trusts an administrator-configured URL: any endpoint with the same scheme, host and port
    /// is accepted for every service. Must be `https` unless the host is loopback.
    ///
    /// # Errors
    /// [`EndpointError`] when the URL is malformed, not an origin, or plain http to a non-loopback
    /// host.
    pub fn trust_url(mut self, url: &str) -> Result<Self, EndpointError> {
        let parsed = parse_origin(url)?;
        if parsed.scheme() == "http" && !is_loopback(&parsed) {
            return Err(EndpointError::PlainHttpNotLoopback {
                input: url.to_owned(),
            });
        }
        self.trusted.push(parsed);
        Ok(self)
    }

    /// Resolves `source` for `service` under this policy.
    ///
    /// # Errors
    /// [`EndpointError`] naming the input and the rule it broke.
    pub fn resolve(
        &self,
        service: Service,
        source: &EndpointSource,
    ) -> Result<Endpoint, EndpointError> {
        match source {
            EndpointSource::Region { region, network } => {
                if !is_valid_region(region) {
                    return Err(EndpointError::InvalidRegion {
                        region: region.clone(),
                    });
                }
                let suffix = match network {
                    Network::Public => "",
                    Network::Vpc => "-vpc",
                };
                let url = format!(
                    "https://{}{suffix}.{region}.aliyuncs.com/",
                    service.product()
                );
                Ok(Endpoint {
                    url: Url::parse(&url).map_err(|source| invalid(&url, source))?,
                    service,
                })
            }
            EndpointSource::KmsInstance { instance_id } => {
                if service != Service::Kms {
                    return Err(EndpointError::InstanceForOtherService { service });
                }
                if !is_valid_instance_id(instance_id) {
                    return Err(EndpointError::InvalidInstanceId {
                        instance_id: instance_id.clone(),
                    });
                }
                let url = format!("https://{instance_id}.cryptoservice.kms.aliyuncs.com/");
                Ok(Endpoint {
                    url: Url::parse(&url).map_err(|source| invalid(&url, source))?,
                    service,
                })
            }
            EndpointSource::Url(input) => self.resolve_url(service, input),
        }
    }

    fn resolve_url(&self, service: Service, input: &str) -> Result<Endpoint, EndpointError> {
        let url = parse_origin(input)?;
        if self.trusted.iter().any(|t| same_origin(t, &url)) {
            return Ok(Endpoint { url, service });
        }
        if is_loopback(&url) {
            if !self.allow_loopback {
                return Err(EndpointError::LoopbackDisabled {
                    input: input.to_owned(),
                    service,
                });
            }
            return Ok(Endpoint { url, service });
        }
        if url.scheme() == "http" {
            return Err(EndpointError::PlainHttpNotLoopback {
                input: input.to_owned(),
            });
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        if is_service_host(service, &host) {
            Ok(Endpoint { url, service })
        } else {
            Err(EndpointError::HostNotAllowed {
                input: input.to_owned(),
                host,
                service,
            })
        }
    }
}

fn invalid(input: &str, source: url::ParseError) -> EndpointError {
    EndpointError::InvalidUrl {
        input: input.to_owned(),
        source,
    }
}

/// Parses `input` (a URL, or a bare `host[:port]` taken as https) into an origin URL with path `/`.
fn parse_origin(input: &str) -> Result<Url, EndpointError> {
    let trimmed = input.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    let url = Url::parse(&with_scheme).map_err(|source| invalid(input, source))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(EndpointError::UnsupportedScheme {
                input: input.to_owned(),
                scheme: other.to_owned(),
            });
        }
    }
    let bare = url.username().is_empty()
        && url.password().is_none()
        && (url.path() == "/" || url.path().is_empty())
        && url.query().is_none()
        && url.fragment().is_none()
        && url.host().is_some();
    if !bare {
        return Err(EndpointError::NotAnOrigin {
            input: input.to_owned(),
        });
    }
    Ok(url)
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// True for `127.0.0.0/8`, `::1` and `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_valid_region(region: &str) -> bool {
    is_label(region) && region.contains('-')
}

fn is_valid_instance_id(id: &str) -> bool {
    id.strip_prefix("kst-").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Whether `host` (already lowercased by the URL parser) is a documented host of `service`.
fn is_service_host(service: Service, host: &str) -> bool {
    let Some(rest) = host.strip_suffix(".aliyuncs.com") else {
        return false;
    };
    let product = service.product();
    if service == Service::Kms
        && let Some(id) = rest.strip_suffix(".cryptoservice.kms")
    {
        return is_valid_instance_id(id);
    }
    if service == Service::Sts && rest == "sts" {
        return true;
    }
    let Some((first, region)) = rest.split_once('.') else {
        return false;
    };
    let product_ok = first == product || first.strip_suffix("-vpc") == Some(product);
    product_ok && is_valid_region(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(service: Service, input: &str) -> Result<Endpoint, EndpointError> {
        EndpointPolicy::default().resolve(service, &EndpointSource::Url(input.to_owned()))
    }

    #[test]
    fn regions_resolve_to_public_and_vpc_hosts() {
        let p = EndpointPolicy::default();
        let public = p
            .resolve(
                Service::Kms,
                &EndpointSource::Region {
                    region: "cn-hangzhou".into(),
                    network: Network::Public,
                },
            )
            .unwrap();
        assert_eq!(
            public.url().as_str(),
            "https://kms.cn-hangzhou.aliyuncs.com/"
        );
        assert_eq!(public.host_header(), "kms.cn-hangzhou.aliyuncs.com");
        let vpc = p
            .resolve(
                Service::Kms,
                &EndpointSource::Region {
                    region: "ap-southeast-1".into(),
                    network: Network::Vpc,
                },
            )
            .unwrap();
        assert_eq!(
            vpc.url().as_str(),
            "https://kms-vpc.ap-southeast-1.aliyuncs.com/"
        );
        let sts = p
            .resolve(
                Service::Sts,
                &EndpointSource::Region {
                    region: "cn-beijing".into(),
                    network: Network::Public,
                },
            )
            .unwrap();
        assert_eq!(sts.url().as_str(), "https://sts.cn-beijing.aliyuncs.com/");
    }

    #[test]
    fn invalid_regions_are_refused_before_building_a_host() {
        for region in [
            "",
            "cn-hangzhou.evil.com",
            "CN-HANGZHOU",
            "local",
            "cn-hangzhou/x",
            "-cn",
        ] {
            let err = EndpointPolicy::default()
                .resolve(
                    Service::Kms,
                    &EndpointSource::Region {
                        region: region.into(),
                        network: Network::Public,
                    },
                )
                .unwrap_err();
            assert!(
                matches!(err, EndpointError::InvalidRegion { .. }),
                "{region}: {err}"
            );
        }
    }

    #[test]
    fn kms_instances_resolve_to_the_cryptoservice_host() {
        let e = EndpointPolicy::default()
            .resolve(
                Service::Kms,
                &EndpointSource::KmsInstance {
                    instance_id: "kst-hzz62ee817bvyyr5x8gvq".into(),
                },
            )
            .unwrap();
        assert_eq!(
            e.url().as_str(),
            "https://kst-hzz62ee817bvyyr5x8gvq.cryptoservice.kms.aliyuncs.com/"
        );
        let err = EndpointPolicy::default()
            .resolve(
                Service::Kms,
                &EndpointSource::KmsInstance {
                    instance_id: "kst-a.b".into(),
                },
            )
            .unwrap_err();
        assert!(matches!(err, EndpointError::InvalidInstanceId { .. }));
    }

    #[test]
    fn alibaba_kms_hosts_are_accepted_as_urls_or_bare_hosts() {
        for ok in [
            "kms.cn-hangzhou.aliyuncs.com",
            "https://kms-vpc.cn-shanghai.aliyuncs.com",
            "https://KMS.cn-hangzhou.aliyuncs.com/",
            "https://kst-abc123.cryptoservice.kms.aliyuncs.com:443",
        ] {
            let e = url(Service::Kms, ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(e.url().scheme(), "https");
        }
        assert_eq!(
            url(Service::Kms, "kms.cn-hangzhou.aliyuncs.com")
                .unwrap()
                .url()
                .as_str(),
            "https://kms.cn-hangzhou.aliyuncs.com/"
        );
    }

    #[test]
    fn hosts_that_only_look_like_alibaba_are_refused() {
        for bad in [
            "https://kms.cn-hangzhou.aliyuncs.com.evil.com",
            "https://evil.com/kms.cn-hangzhou.aliyuncs.com",
            "https://kms.cn-hangzhou.aliyuncs.com@evil.com",
            "https://sts.cn-hangzhou.aliyuncs.com",
            "https://ecs.cn-hangzhou.aliyuncs.com",
            "https://kms.aliyuncs.com",
            "https://x.kms.cn-hangzhou.aliyuncs.com",
            "https://100.100.100.200",
            "https://169.254.169.254",
            "https://10.0.0.1:443",
            "https://kubernetes.default.svc",
        ] {
            assert!(url(Service::Kms, bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn plain_http_is_only_for_loopback() {
        let e = url(Service::Kms, "http://127.0.0.1:8443").unwrap();
        assert_eq!(e.url().as_str(), "http://127.0.0.1:8443/");
        assert_eq!(e.host_header(), "127.0.0.1:8443");
        assert!(e.is_plain_http());
        assert!(url(Service::Kms, "http://localhost:9000/").is_ok());
        assert!(url(Service::Kms, "http://[::1]:9000").is_ok());
        assert!(url(Service::Kms, "https://127.0.0.1:9443").is_ok());
        let err = url(Service::Kms, "http://kms.cn-hangzhou.aliyuncs.com").unwrap_err();
        assert!(
            matches!(err, EndpointError::PlainHttpNotLoopback { .. }),
            "{err}"
        );
        let err = url(Service::Kms, "http://100.100.100.200/latest/meta-data").unwrap_err();
        assert!(matches!(err, EndpointError::NotAnOrigin { .. }), "{err}");
        let err = url(Service::Kms, "http://100.100.100.200").unwrap_err();
        assert!(
            matches!(err, EndpointError::PlainHttpNotLoopback { .. }),
            "{err}"
        );
    }

    #[test]
    fn loopback_can_be_disabled() {
        let p = EndpointPolicy::default().allow_loopback(false);
        for bad in [
            "http://127.0.0.1:8443",
            "https://127.0.0.1:8443",
            "http://localhost:8080",
            "http://LOCALHOST:8080",
            "http://[::1]:8081",
            "http://127.1.2.3",
            // Other spellings of 127.0.0.1 that the URL parser normalises.
            "http://2130706433:8080",
            "http://0x7f.1:8080",
        ] {
            let err = p
                .resolve(Service::Kms, &EndpointSource::Url(bad.into()))
                .unwrap_err();
            assert!(
                matches!(err, EndpointError::LoopbackDisabled { .. }),
                "{bad}: {err}"
            );
        }
        // Alibaba Cloud hosts are unaffected.
        assert!(
            p.resolve(
                Service::Kms,
                &EndpointSource::Url("https://kms.cn-hangzhou.aliyuncs.com".into())
            )
            .is_ok()
        );
    }

    #[test]
    fn a_refused_endpoint_says_what_it_is_not_and_how_to_allow_it() {
        let p = EndpointPolicy::default().allow_loopback(false);
        let err = p
            .resolve(
                Service::Kms,
                &EndpointSource::Url("http://127.0.0.1:9".into()),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "endpoint \"http://127.0.0.1:9\" is not an Alibaba Cloud KMS endpoint (loopback addresses are refused); an administrator can allow it with --allowed-endpoints"
        );
        let err = p
            .resolve(
                Service::Kms,
                &EndpointSource::Url("https://kms-proxy.internal".into()),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "endpoint \"https://kms-proxy.internal\" is not an Alibaba Cloud KMS endpoint; an administrator can allow it with --allowed-endpoints"
        );
    }

    #[test]
    fn an_administrator_can_allow_a_loopback_origin_when_loopback_is_disabled() {
        let p = EndpointPolicy::default()
            .allow_loopback(false)
            .trust_url("http://127.0.0.1:8443")
            .unwrap();
        for ok in [
            "http://127.0.0.1:8443",
            "http://127.0.0.1:8443/",
            " http://127.0.0.1:8443 ",
        ] {
            let e = p
                .resolve(Service::Kms, &EndpointSource::Url(ok.into()))
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(e.url().as_str(), "http://127.0.0.1:8443/");
        }
        // Matching is by exact origin: another port, scheme or spelling of the host is not
        // the listed URL.
        for bad in [
            "http://127.0.0.1:8444",
            "https://127.0.0.1:8443",
            "http://localhost:8443",
            "127.0.0.1:8443",
        ] {
            assert!(
                p.resolve(Service::Kms, &EndpointSource::Url(bad.into()))
                    .is_err(),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn paths_queries_fragments_user_info_and_other_schemes_are_refused() {
        for bad in [
            "https://kms.cn-hangzhou.aliyuncs.com/path",
            "https://kms.cn-hangzhou.aliyuncs.com/?a=b",
            "https://kms.cn-hangzhou.aliyuncs.com/#f",
            "https://user:pw@kms.cn-hangzhou.aliyuncs.com",
            "ftp://kms.cn-hangzhou.aliyuncs.com",
            "file:///etc/passwd",
            "",
        ] {
            assert!(url(Service::Kms, bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn administrator_urls_are_trusted_by_origin_only() {
        let p = EndpointPolicy::default()
            .trust_url("https://kms-proxy.internal:8443")
            .unwrap();
        let ok = p
            .resolve(
                Service::Kms,
                &EndpointSource::Url("https://kms-proxy.internal:8443/".into()),
            )
            .unwrap();
        assert_eq!(ok.host_header(), "kms-proxy.internal:8443");
        assert!(
            p.resolve(
                Service::Kms,
                &EndpointSource::Url("https://kms-proxy.internal:9443".into())
            )
            .is_err()
        );
        assert!(
            p.resolve(
                Service::Kms,
                &EndpointSource::Url("http://kms-proxy.internal:8443".into())
            )
            .is_err()
        );
        let err = EndpointPolicy::default()
            .trust_url("http://kms-proxy.internal")
            .unwrap_err();
        assert!(matches!(err, EndpointError::PlainHttpNotLoopback { .. }));
    }

    #[test]
    fn sts_and_oos_hosts_follow_their_own_patterns() {
        assert!(url(Service::Sts, "https://sts.aliyuncs.com").is_ok());
        assert!(url(Service::Sts, "https://sts-vpc.cn-hangzhou.aliyuncs.com").is_ok());
        assert!(url(Service::Oos, "https://oos.cn-hangzhou.aliyuncs.com").is_ok());
        assert!(url(Service::Oos, "https://kms.cn-hangzhou.aliyuncs.com").is_err());
        assert!(url(Service::Kms, "https://oos.cn-hangzhou.aliyuncs.com").is_err());
    }
}
