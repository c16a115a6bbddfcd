//! The local S3 + Glue endpoint (moto's server, started by `scripts/aws-server`), and a real
//! Python client of it (`tests/support/aws_client.py`: boto3, pyarrow, awswrangler).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

/// The endpoint and the client's interpreter.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    python: PathBuf,
}

/// The S3 + Glue endpoint (moto) named by `CITRINE_TEST_AWS_ENDPOINT` (scripts/test sets it),
/// or `None` outside CI: the caller skips with a message. With CI=true its absence is a failure.
pub fn endpoint() -> Option<Endpoint> {
    named("CITRINE_TEST_AWS_ENDPOINT")
}

/// The signature-checking S3 server (SeaweedFS) named by `CITRINE_TEST_S3_ENDPOINT`, as above.
pub fn strict_s3() -> Option<Endpoint> {
    named("CITRINE_TEST_S3_ENDPOINT")
}

fn named(var: &str) -> Option<Endpoint> {
    let Ok(url) = std::env::var(var) else {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but no {var}: scripts/test starts the local endpoints (scripts/aws-server)"
        );
        eprintln!("SKIPPED: tests needing {var} (run scripts/test, or export the lines `scripts/aws-server start` prints)");
        return None;
    };
    let python = super::python().expect("the endpoint's client needs scripts/python-env");
    Some(Endpoint { url, python })
}

impl Endpoint {
    /// The environment every process talking to the endpoint gets.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        env_for(&self.url)
    }

    /// Run the Python client; its JSON answer.
    pub fn client(&self, args: &[&str]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/aws_client.py");
        let mut cmd = Command::new(&self.python);
        cmd.arg(script).args(args);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "aws_client {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Set moto's server configuration (`POST /moto-api/config`).
    pub fn post_config(&self, config: Value) {
        self.client(&["moto-config", &config.to_string()]);
    }

    /// A new, empty bucket (and a matching Glue database name) unique to this process.
    pub fn fresh_bucket(&self, tag: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "citrine-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.client(&["mkbucket", &name]);
        name
    }

    /// `citrine` with `args` in `dir`, talking to the endpoint, plus `extra` environment.
    pub fn citrine(
        &self,
        dir: &Path,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> std::process::Output {
        let env = self.env();
        let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(extra);
        super::citrine_env(dir, args, &all)
    }
}

/// The environment of a process talking to an AWS endpoint at `url`: static credentials, no
/// instance metadata, no profile files.
pub fn env_for(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", url.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
    ]
}

/// A Glue database name for `bucket` (Glue names: lower case, digits, `_`).
pub fn database_of(bucket: &str) -> String {
    bucket.replace('-', "_")
}

/// A moto server of a test's own (`tests/support/moto_server.py`: Step Functions service
/// integrations as AWS maps them, Batch jobs whose image is an executable run for real), with
/// `env` added to its environment; stopped on drop. `None` outside CI without
/// scripts/python-env (the caller skips).
pub struct OwnServer {
    pub endpoint: Endpoint,
    child: std::process::Child,
}

impl OwnServer {
    pub fn start(env: &[(&str, &str)]) -> Option<Self> {
        let python = super::python()?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/moto_server.py");
        let mut cmd = Command::new(&python);
        // Its log (the jobs it ran, their standard error) beside the build's other outputs.
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("moto-server-{port}.log"));
        cmd.arg(script)
            .arg(port.to_string())
            .env("MOTO_PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env_for(&url) {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let server = Self {
            endpoint: Endpoint { url, python },
            child,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("moto_server.py did not listen on {port}");
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
