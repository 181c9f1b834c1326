//! The S3 gateway in-process on loopback in front of a real Garage (`testing::start_garage`):
//! signed requests pass through, anonymous ones follow the bucket ACL (re-signed with the
//! gateway's key), SSE and object ACLs are refused before Garage sees them, Referer rules guard
//! anonymous, presigned and website requests, and HTTPS works on the listeners.

#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

use std::sync::Arc;

use agility_oss::crd::{Acl, RefererRules};
use agility_oss::garage::{BucketUpdate, Permissions, WebsiteAccess};
use agility_oss::gateway::config::{BucketRules, GatewayConfig};
use agility_oss::gateway::harness::{Answer, RunningGateway, S3Http, Signing, start_gateway};
use agility_oss::gateway::{Domains, SigningKey};
use agility_oss::testing::{self, RunningGarage, TestBucket};
use bytes::Bytes;
use http::{Method, StatusCode};

struct Setup {
    garage: RunningGarage,
    gw: RunningGateway,
    http: S3Http,
    private: TestBucket,
    public: TestBucket,
    rw: TestBucket,
    leech: TestBucket,
    site: TestBucket,
}

const GOOD_REFERER: &str = "https://shop.example.com/page";
const BAD_REFERER: &str = "https://leech.test/page";

fn referer() -> Option<RefererRules> {
    Some(RefererRules {
        allowed: vec!["https://*.example.com/*".into()],
        allow_empty: false,
    })
}

async fn setup(tls: Option<Arc<rustls::ServerConfig>>) -> Setup {
    let garage = testing::start_garage(1, 1).await;
    let private = garage.create_bucket_with_key("gw-private").await;
    let public = garage.create_bucket_with_key("gw-public").await;
    let rw = garage.create_bucket_with_key("gw-rw").await;
    let leech = garage.create_bucket_with_key("gw-leech").await;
    let site = garage.create_bucket_with_key("gw-site").await;
    let admin = garage.admin_client();
    admin
        .update_bucket(
            &site.bucket_id,
            &BucketUpdate {
                website_access: Some(WebsiteAccess::Enabled {
                    index_document: "index.html".into(),
                    error_document: None,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The gateway's own key, granted as the operator grants it: read on public buckets, write
    // on public-read-write ones, nothing on private ones.
    let key = admin.create_key("gateway").await.unwrap();
    for (b, p) in [
        (&public, Permissions::READ),
        (&leech, Permissions::READ),
        (&rw, Permissions::READ_WRITE),
    ] {
        admin
            .allow_bucket_key(&b.bucket_id, &key.access_key_id, p)
            .await
            .unwrap();
    }
    let mut config = GatewayConfig::default();
    for (b, acl, referer) in [
        (&private, Acl::Private, None),
        (&public, Acl::PublicRead, None),
        (&rw, Acl::PublicReadWrite, None),
        (&leech, Acl::PublicRead, referer()),
        (&site, Acl::Private, referer()),
    ] {
        config
            .buckets
            .insert(b.name.clone(), BucketRules { acl, referer });
    }
    let rules_file = garage.dir().join("rules.json");
    std::fs::write(&rules_file, serde_json::to_vec(&config).unwrap()).unwrap();
    let gw = start_gateway(
        &garage.s3,
        &garage.web,
        SigningKey {
            access_key_id: key.access_key_id.clone(),
            secret_access_key: key.secret_access_key.clone().unwrap(),
            region: garage.region.clone(),
        },
        Domains {
            s3: Some(garage.s3_root_domain.trim_start_matches('.').to_owned()),
            web: Some(garage.web_root_domain.trim_start_matches('.').to_owned()),
        },
        &rules_file,
        tls,
    )
    .await
    .unwrap();
    Setup {
        http: S3Http::new(&garage.region),
        garage,
        gw,
        private,
        public,
        rw,
        leech,
        site,
    }
}

fn garage_addr(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

impl Setup {
    /// A request to the gateway's S3 port.
    async fn gw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &'static [u8],
        signing: Signing<'_>,
    ) -> Answer {
        self.http
            .send(
                method,
                self.gw.s3,
                None,
                path,
                headers,
                Bytes::from_static(body),
                signing,
            )
            .await
            .unwrap()
    }

    /// A signed request straight to Garage.
    async fn direct(
        &self,
        method: Method,
        path: &str,
        body: &'static [u8],
        b: &TestBucket,
    ) -> Answer {
        self.http
            .send(
                method,
                garage_addr(&self.garage.s3),
                None,
                path,
                &[],
                Bytes::from_static(body),
                Signing::Header(&b.key_id, &b.secret),
            )
            .await
            .unwrap()
    }
}

fn owner(b: &TestBucket) -> Signing<'_> {
    Signing::Header(&b.key_id, &b.secret)
}

fn assert_s3_error(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    assert!(
        a.text().contains(&format!("<Code>{code}</Code>")),
        "{}",
        a.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_enforces_acls_sse_and_referer_in_front_of_garage() {
    let s = setup(None).await;
    let anon = Signing::Anonymous;

    // Signed PUT/GET pass through (Host = the gateway, the client's signature verifies at Garage).
    let put = s
        .gw(
            Method::PUT,
            "/gw-private/docs/a%20b.txt",
            &[("x-amz-meta-colour", "blue")],
            b"secret",
            owner(&s.private),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let got = s
        .gw(
            Method::GET,
            "/gw-private/docs/a%20b.txt",
            &[],
            b"",
            owner(&s.private),
        )
        .await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, &b"secret"[..])
    );
    assert_eq!(got.headers["x-amz-meta-colour"], "blue");
    // Virtual-host style, signed: passes through with the Host the client signed.
    let vhost = s
        .http
        .send(
            Method::GET,
            s.gw.s3,
            Some("gw-private.s3.agility.test"),
            "/docs/a%20b.txt",
            &[],
            Bytes::new(),
            owner(&s.private),
        )
        .await
        .unwrap();
    assert_eq!(
        (vhost.status, vhost.body.as_ref()),
        (StatusCode::OK, &b"secret"[..])
    );
    // Anonymous on the private bucket: 403 from the gateway.
    let denied = s
        .gw(Method::GET, "/gw-private/docs/a%20b.txt", &[], b"", anon)
        .await;
    assert_s3_error(&denied, StatusCode::FORBIDDEN, "AccessDenied");

    // public-read: anonymous GET, HEAD and list work; PUT does not.
    assert_eq!(
        s.direct(Method::PUT, "/gw-public/p%281%29.txt", b"hello", &s.public)
            .await
            .status,
        StatusCode::OK
    );
    let got = s
        .gw(Method::GET, "/gw-public/p(1).txt", &[], b"", anon)
        .await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, &b"hello"[..]),
        "{}",
        got.text()
    );
    let head = s
        .gw(Method::HEAD, "/gw-public/p%281%29.txt", &[], b"", anon)
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers["content-length"], "5");
    let list = s
        .gw(Method::GET, "/gw-public?list-type=2", &[], b"", anon)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    assert!(
        list.text().contains("<Key>p(1).txt</Key>"),
        "{}",
        list.text()
    );
    let vhost = s
        .http
        .send(
            Method::GET,
            s.gw.s3,
            Some("gw-public.s3.agility.test"),
            "/p(1).txt",
            &[],
            Bytes::new(),
            anon,
        )
        .await
        .unwrap();
    assert_eq!(
        (vhost.status, vhost.body.as_ref()),
        (StatusCode::OK, &b"hello"[..])
    );
    let put = s
        .gw(Method::PUT, "/gw-public/new.txt", &[], b"x", anon)
        .await;
    assert_s3_error(&put, StatusCode::FORBIDDEN, "AccessDenied");
    assert_eq!(
        s.direct(Method::GET, "/gw-public/new.txt", b"", &s.public)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // public-read-write: anonymous PUT, GET, DELETE work.
    let put = s
        .gw(
            Method::PUT,
            "/gw-rw/up.txt",
            &[("content-type", "text/plain")],
            b"anon data",
            anon,
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let got = s.direct(Method::GET, "/gw-rw/up.txt", b"", &s.rw).await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, &b"anon data"[..])
    );
    assert_eq!(got.headers["content-type"], "text/plain");
    let del = s.gw(Method::DELETE, "/gw-rw/up.txt", &[], b"", anon).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text());
    assert_eq!(
        s.direct(Method::GET, "/gw-rw/up.txt", b"", &s.rw)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Bucket operations stay refused.
    let del = s.gw(Method::DELETE, "/gw-rw", &[], b"", anon).await;
    assert_s3_error(&del, StatusCode::FORBIDDEN, "AccessDenied");

    // SSE: 501 and nothing stored, signed or not.
    for (bucket, signing) in [("gw-private", owner(&s.private)), ("gw-rw", anon)] {
        let put = s
            .gw(
                Method::PUT,
                &format!("/{bucket}/sse.txt"),
                &[("x-amz-server-side-encryption", "AES256")],
                b"plain",
                signing,
            )
            .await;
        assert_s3_error(&put, StatusCode::NOT_IMPLEMENTED, "NotImplemented");
        assert!(put.text().contains("unencrypted"), "{}", put.text());
    }
    assert_eq!(
        s.direct(Method::GET, "/gw-private/sse.txt", b"", &s.private)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.direct(Method::GET, "/gw-rw/sse.txt", b"", &s.rw)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let enc = s
        .gw(
            Method::PUT,
            "/gw-private?encryption",
            &[],
            b"<x/>",
            owner(&s.private),
        )
        .await;
    assert_s3_error(&enc, StatusCode::NOT_IMPLEMENTED, "NotImplemented");
    // Object ACLs: 501.
    let acl = s
        .gw(
            Method::PUT,
            "/gw-private/acl.txt",
            &[("x-amz-acl", "public-read")],
            b"x",
            owner(&s.private),
        )
        .await;
    assert_s3_error(&acl, StatusCode::NOT_IMPLEMENTED, "NotImplemented");
    assert_eq!(
        s.direct(Method::GET, "/gw-private/acl.txt", b"", &s.private)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Referer rules on an anonymous public-read bucket.
    assert_eq!(
        s.direct(Method::PUT, "/gw-leech/img.png", b"png", &s.leech)
            .await
            .status,
        StatusCode::OK
    );
    let ok = s
        .gw(
            Method::GET,
            "/gw-leech/img.png",
            &[("referer", GOOD_REFERER)],
            b"",
            anon,
        )
        .await;
    assert_eq!((ok.status, ok.body.as_ref()), (StatusCode::OK, &b"png"[..]));
    for h in [&[("referer", BAD_REFERER)][..], &[]] {
        let no = s.gw(Method::GET, "/gw-leech/img.png", h, b"", anon).await;
        assert_s3_error(&no, StatusCode::FORBIDDEN, "AccessDenied");
        assert!(no.text().contains("Referer rules"), "{}", no.text());
    }
    // Header-signed requests ignore the Referer.
    let signed = s
        .gw(
            Method::GET,
            "/gw-leech/img.png",
            &[("referer", BAD_REFERER)],
            b"",
            owner(&s.leech),
        )
        .await;
    assert_eq!(signed.status, StatusCode::OK);
    // Presigned links (on a private bucket too) are subject to it.
    assert_eq!(
        s.direct(
            Method::PUT,
            "/gw-site/index.html",
            b"<h1>site</h1>",
            &s.site
        )
        .await
        .status,
        StatusCode::OK
    );
    let presigned = Signing::Query(&s.site.key_id, &s.site.secret);
    let ok = s
        .gw(
            Method::GET,
            "/gw-site/index.html",
            &[("referer", GOOD_REFERER)],
            b"",
            presigned,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let no = s
        .gw(
            Method::GET,
            "/gw-site/index.html",
            &[("referer", BAD_REFERER)],
            b"",
            presigned,
        )
        .await;
    assert_s3_error(&no, StatusCode::FORBIDDEN, "AccessDenied");

    // Website through the web port, Host = <bucket>.<web domain>, with the Referer rules.
    let web = |referer: Option<&'static str>| {
        let headers: Vec<(&str, &str)> = referer.map(|r| ("referer", r)).into_iter().collect();
        let http = s.http.clone();
        let addr = s.gw.web;
        async move {
            http.send(
                Method::GET,
                addr,
                Some("gw-site.web.agility.test"),
                "/",
                &headers,
                Bytes::new(),
                Signing::Anonymous,
            )
            .await
            .unwrap()
        }
    };
    let page = web(Some(GOOD_REFERER)).await;
    assert_eq!(
        (page.status, page.text().as_str()),
        (StatusCode::OK, "<h1>site</h1>")
    );
    assert_s3_error(
        &web(Some(BAD_REFERER)).await,
        StatusCode::FORBIDDEN,
        "AccessDenied",
    );
    assert_s3_error(&web(None).await, StatusCode::FORBIDDEN, "AccessDenied");

    // Admin port: ready, and the decisions are counted.
    let admin = |path: &'static str| {
        let http = s.http.clone();
        let addr = s.gw.admin;
        async move {
            http.send(
                Method::GET,
                addr,
                None,
                path,
                &[],
                Bytes::new(),
                Signing::Anonymous,
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(admin("/readyz").await.status, StatusCode::OK);
    assert_eq!(admin("/healthz").await.status, StatusCode::OK);
    let metrics = admin("/metrics").await.text();
    for d in [
        "forwarded",
        "resigned",
        "denied_acl",
        "denied_referer",
        "refused_sse",
        "refused_acl",
    ] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("agility_oss_gateway_requests_total")
                    && l.contains(&format!("decision=\"{d}\""))
                    && l.contains("endpoint=\"s3\"")
            })
            .unwrap_or_else(|| panic!("{d} missing in\n{metrics}"));
        assert!(!line.ends_with(" 0"), "{line}");
    }
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_garage_gives_503_and_bad_rules_do_not_start() {
    let mut s = setup(None).await;
    s.garage.stop().await;
    let a = s
        .gw(Method::GET, "/gw-public/x", &[], b"", Signing::Anonymous)
        .await;
    assert_s3_error(&a, StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    let bad = s.garage.dir().join("bad.json");
    std::fs::write(&bad, "{\"buckets\": 1}").unwrap();
    let err = start_gateway(
        &s.garage.s3,
        &s.garage.web,
        SigningKey {
            access_key_id: "GK".into(),
            secret_access_key: "x".into(),
            region: "agility".into(),
        },
        Domains::default(),
        &bad,
        None,
    )
    .await;
    assert!(err.is_err());
    let _ = (&s.private, &s.public, &s.rw, &s.leech, &s.site);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_on_the_s3_and_website_listeners() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    use rustls_pki_types::ServerName;

    // A certificate from PEM files, as --tls-cert/--tls-key load it.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("agility-gw-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let tls = agility_oss::gateway::tls::server_config(&cert_file, &key_file).unwrap();
    let s = setup(Some(tls)).await;
    assert_eq!(
        s.direct(Method::PUT, "/gw-public/tls.txt", b"over tls", &s.public)
            .await
            .status,
        StatusCode::OK
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        for (addr, host, path, want) in [
            (s.gw.s3, "localhost", "/gw-public/tls.txt", &b"over tls"[..]),
            (s.gw.web, "gw-site.web.agility.test", "/", &b""[..]),
        ] {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let stream = connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = http::Request::get(path)
                .header("host", host)
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            if want.is_empty() {
                // The website bucket's Referer rules refuse a request without a Referer.
                assert_eq!(status, StatusCode::FORBIDDEN, "{version:?} {host}");
            } else {
                assert_eq!(
                    (status, body.as_ref()),
                    (StatusCode::OK, want),
                    "{version:?}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
