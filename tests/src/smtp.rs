//! A real SMTP server (Python's aiosmtpd) on loopback, writing messages to a folder.

use std::path::PathBuf;
use std::process::Stdio;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct SmtpSink {
    pub port: u16,
    folder: TempDir,
    _child: Child,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().unwrap().port()
        };
        let folder = tempfile::tempdir().expect("temp dir");
        let script = PathBuf::from(manifest_dir()).join("fakes/smtp_sink.py");
        let python = std::env::var("HERALD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(folder.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SMTP sink (python3 with aiosmtpd)");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("SMTP sink starts within 20 s")
            .expect("read SMTP sink output");
        assert_eq!(
            ready.as_deref(),
            Some("ready"),
            "SMTP sink did not start (is aiosmtpd installed?)"
        );
        SmtpSink { port, folder, _child: child }
    }

    /// Every message received so far, as raw RFC 5322 text, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(self.folder.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
    }
}

/// The package's folder. Read at run time (cargo test sets it) rather than baked in at
/// build time: the build cache is shared by clones at different paths.
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}
