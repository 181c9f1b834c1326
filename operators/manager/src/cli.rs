//! Command-line interface of `agility-operator`.

use std::net::SocketAddr;
use std::path::PathBuf;

use agility_core::telemetry::LogFormat;
use clap::{ArgAction, Args, Parser, Subcommand};

/// The Agility operator: runs the enabled product controllers in one leader-elected process.
#[derive(Debug, Parser)]
#[command(
    name = "agility-operator",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Flags of `run` when no subcommand is given.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers (the default).
    Run(RunArgs),
    /// Write `<plural>.<group>.yaml` for every CRD of every product into a directory.
    Crdgen(CrdgenArgs),
    /// Serve the Kubernetes KMS v2 provider (gRPC on a unix socket) for a kube-apiserver,
    /// backed by a `Cmk` of the Agility KMS.
    KmsPlugin(KmsPluginArgs),
    /// Serve the S3 gateway in front of a Garage store: bucket ACLs for anonymous requests,
    /// Referer anti-leech, refusal of SSE and object ACLs Garage would ignore.
    OssGateway(OssGatewayArgs),
}

/// Flags of `oss-gateway`.
#[derive(Debug, Args, Clone, PartialEq, Eq)]
#[command(group(clap::ArgGroup::new("rules").required(true).args(["rules_configmap", "rules_file"])))]
pub struct OssGatewayArgs {
    /// Garage's S3 API, `http://host:3900`.
    #[arg(long)]
    pub s3_upstream: String,
    /// Garage's website endpoint, `http://host:3902`.
    #[arg(long)]
    pub web_upstream: String,
    /// The region Garage expects in signatures.
    #[arg(long, default_value = "agility")]
    pub region: String,
    /// The ConfigMap holding `rules.json` (watched; the gateway's Role may be limited to it).
    #[arg(long)]
    pub rules_configmap: Option<String>,
    /// A `rules.json` file instead of the ConfigMap (read once at start).
    #[arg(long)]
    pub rules_file: Option<PathBuf>,
    /// Namespace of the rules ConfigMap (default: the pod's, else the kubeconfig's).
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Domain of virtual-host S3 requests (`<bucket>.<domain>`); path style always works.
    #[arg(long)]
    pub s3_domain: Option<String>,
    /// Domain of website requests (`<bucket>.<domain>`); a Host equal to a bucket name works too.
    #[arg(long)]
    pub web_domain: Option<String>,
    /// PEM certificate chain: serve HTTPS on the S3 and website listeners.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// S3 listener.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen_s3: SocketAddr,
    /// Website listener.
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub listen_web: SocketAddr,
    /// `/healthz`, `/readyz` and `/metrics` (plain HTTP).
    #[arg(long, default_value = "0.0.0.0:8082")]
    pub listen_admin: SocketAddr,
    /// The gateway's own Garage access key id (from the environment in production).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: String,
    /// Its secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: String,
    /// Log format: json or text (level from RUST_LOG).
    #[arg(long, env = "AGILITY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// Flags of `kms-plugin`.
#[derive(Debug, Args, Clone, PartialEq, Eq)]
pub struct KmsPluginArgs {
    /// The unix socket the API server's EncryptionConfiguration names.
    #[arg(long, default_value = "/var/run/agility-kms/plugin.sock")]
    pub socket: PathBuf,
    /// `host:port` of the KMS API (e.g. the KMS Service's ClusterIP and port 443).
    #[arg(long)]
    pub endpoint: String,
    /// The name the KMS certificate is verified for (and the Host header).
    #[arg(long, default_value = "agility-kms.agility-system.svc")]
    pub server_name: String,
    /// The KMS CA (`ca.crt` of the ConfigMap agility-kms-ca).
    #[arg(long)]
    pub ca_file: PathBuf,
    /// The key: id, ARN or alias.
    #[arg(long)]
    pub key: String,
    /// The region requests are signed for.
    #[arg(long, default_value = "local")]
    pub region: String,
    /// The access key id (from the environment, not the command line, in production).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: String,
    /// The secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: String,
    /// Log format: json or text (level from RUST_LOG).
    #[arg(long, env = "AGILITY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// Flags of `run`.
#[derive(Debug, Args, Clone, PartialEq, Eq)]
pub struct RunArgs {
    /// Comma-separated controller names to run (default: all). An empty value runs none.
    #[arg(long, value_delimiter = ',')]
    pub controllers: Option<Vec<String>>,

    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Elect a leader over a Lease so that only one replica reconciles (`--leader-election=false`
    /// to disable, e.g. for a single local process).
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub leader_election: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, default_value = "agility-operator")]
    pub lease_name: String,

    /// Namespace of the Lease (default: the pod's namespace, else the kubeconfig's).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// This replica's identity in the election (default: the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Lease duration in seconds: how long a crashed leader blocks a takeover.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=300))]
    pub lease_duration_seconds: u64,

    /// How often the leader renews the Lease, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub lease_renew_seconds: u64,

    /// Log format: json or text (level from RUST_LOG).
    #[arg(long, env = "AGILITY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// Flags of `crdgen`.
#[derive(Debug, Args, Clone, PartialEq, Eq)]
pub struct CrdgenArgs {
    /// Directory to write (or check) the CRD files in.
    #[arg(long)]
    pub out: PathBuf,

    /// Do not write: exit non-zero listing every file that differs from what would be written.
    #[arg(long)]
    pub check: bool,
}

impl Cli {
    /// The subcommand, with `run` as the default.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Run(self.run))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        let mut argv = vec!["agility-operator"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().into_command()
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(args) {
            Command::Run(r) => r,
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn kms_plugin_takes_its_endpoint_key_and_credentials() {
        let c = parse(&[
            "kms-plugin",
            "--endpoint",
            "10.96.0.20:443",
            "--ca-file",
            "/etc/agility/kms-ca.crt",
            "--key",
            "alias/apiserver",
            "--access-key-id",
            "AKIA1",
            "--secret-access-key",
            "s",
        ]);
        let Command::KmsPlugin(k) = c else {
            panic!("expected kms-plugin, got {c:?}");
        };
        assert_eq!(k.socket, PathBuf::from("/var/run/agility-kms/plugin.sock"));
        assert_eq!(k.server_name, "agility-kms.agility-system.svc");
        assert_eq!(k.key, "alias/apiserver");
    }

    #[test]
    fn oss_gateway_takes_upstreams_rules_and_defaults() {
        let c = parse(&[
            "oss-gateway",
            "--s3-upstream",
            "http://store:3900",
            "--web-upstream",
            "http://store:3902",
            "--rules-configmap",
            "store-gateway-rules",
            "--namespace",
            "storage",
            "--access-key-id",
            "GK1",
            "--secret-access-key",
            "s",
        ]);
        let Command::OssGateway(g) = c else {
            panic!("expected oss-gateway, got {c:?}");
        };
        assert_eq!(g.rules_configmap.as_deref(), Some("store-gateway-rules"));
        assert_eq!(g.region, "agility");
        assert_eq!(g.listen_s3, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(g.listen_web, "0.0.0.0:8081".parse().unwrap());
        assert_eq!(g.listen_admin, "0.0.0.0:8082".parse().unwrap());
        assert_eq!(g.tls_cert, None);
        let base = [
            "agility-operator",
            "oss-gateway",
            "--s3-upstream",
            "http://s:3900",
            "--web-upstream",
            "http://s:3902",
            "--access-key-id",
            "GK1",
            "--secret-access-key",
            "s",
        ];
        let with = |extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            Cli::try_parse_from(v)
        };
        // Exactly one rule source; TLS needs both files.
        assert!(with(&[]).is_err());
        assert!(with(&["--rules-file", "r.json", "--rules-configmap", "x"]).is_err());
        assert!(with(&["--rules-file", "r.json", "--tls-cert", "c.pem"]).is_err());
        assert!(
            with(&[
                "--rules-file",
                "r.json",
                "--tls-cert",
                "c",
                "--tls-key",
                "k"
            ])
            .is_ok()
        );
    }

    #[test]
    fn run_is_the_default_with_documented_defaults() {
        // SAFETY of the assertions: the env-backed flags must not leak from the test environment.
        let r = run_args(&[]);
        assert_eq!(r.controllers, None);
        assert_eq!(r.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert!(r.leader_election);
        assert_eq!(r.lease_name, "agility-operator");
        assert_eq!(r.lease_duration_seconds, 15);
        assert_eq!(r.lease_renew_seconds, 5);
        assert_eq!(run_args(&["run"]), r);
    }

    #[test]
    fn parses_every_run_flag() {
        let r = run_args(&[
            "run",
            "--controllers",
            "redis,kms",
            "--http-addr",
            "127.0.0.1:9090",
            "--leader-election=false",
            "--lease-name",
            "x",
            "--lease-namespace",
            "ops",
            "--identity",
            "pod-1",
            "--log-format",
            "json",
        ]);
        assert_eq!(
            r.controllers,
            Some(vec!["redis".to_owned(), "kms".to_owned()])
        );
        assert_eq!(r.http_addr.port(), 9090);
        assert!(!r.leader_election);
        assert_eq!(r.lease_name, "x");
        assert_eq!(r.lease_namespace.as_deref(), Some("ops"));
        assert_eq!(r.identity.as_deref(), Some("pod-1"));
        assert_eq!(r.log_format, LogFormat::Json);
        // Flags also work without the explicit subcommand, and a bare --leader-election means true.
        let r = run_args(&["--leader-election", "--controllers", "redis"]);
        assert!(r.leader_election);
        assert_eq!(r.controllers, Some(vec!["redis".to_owned()]));
    }

    #[test]
    fn parses_crdgen() {
        match parse(&["crdgen", "--out", "crds", "--check"]) {
            Command::Crdgen(c) => {
                assert_eq!(c.out, PathBuf::from("crds"));
                assert!(c.check);
            }
            other => panic!("expected crdgen, got {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            vec!["agility-operator", "--log-format", "yaml"],
            vec!["agility-operator", "--http-addr", "nope"],
            vec!["agility-operator", "--lease-duration-seconds", "1"],
            vec!["agility-operator", "crdgen"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
